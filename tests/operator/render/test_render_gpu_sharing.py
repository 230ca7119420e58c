"""spec.resources' GPU forms rendered: a MIG slice and a shared GPU as extended resources
(strict-valid from 1.30), a DRA claim as an owned ResourceClaimTemplate the pods name
(strict-valid on 1.34-1.37, where resource.k8s.io/v1 exists, and not before), contradictory
asks refused naming the field."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from render_helpers import example_crs, make_cr
from reranker_operator.api.spec import InvalidSpecError
from reranker_operator.render.manifests import render_children

M = {"name": "Qwen/Qwen3-Reranker-0.6B"}
DRA_VERSIONS = ("1.34", "1.35", "1.36", "1.37")
UID = "0b7c4c1e-1111-4222-8333-944445555666"


def kids(resources: dict[str, Any], **spec: Any) -> dict[str, dict[str, Any]]:
    return {
        c["kind"]: c for c in render_children(make_cr({"model": M, "resources": resources, **spec}))
    }


def pod_of(children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return children["Deployment"]["spec"]["template"]["spec"]


def server(children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return pod_of(children)["containers"][0]


def vllm_of(children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The container running `vllm serve` (behind the front or bare)."""
    return next(c for c in pod_of(children)["containers"] if c.get("command") == ["vllm", "serve"])


def device_env(children: dict[str, dict[str, Any]]) -> str:
    return next(e["value"] for e in server(children)["env"] if e["name"] == "DEVICE")


@pytest.mark.parametrize(
    ("resources", "name"),
    [
        ({"mig": {"profile": "1g.18gb"}}, "nvidia.com/mig-1g.18gb"),
        ({"mig": {"profile": "3g.40gb"}}, "nvidia.com/mig-3g.40gb"),
        ({"sharedGpu": {}}, "nvidia.com/gpu.shared"),
        ({"sharedGpu": {"resourceName": "example.com/gpu-share"}}, "example.com/gpu-share"),
    ],
)
def test_extended_resource_forms(resources: dict[str, Any], name: str) -> None:
    children = kids(resources)
    res = server(children)["resources"]
    assert res["requests"][name] == res["limits"][name] == "1"
    assert "nvidia.com/gpu" not in res["requests"] and "claims" not in res
    assert device_env(children) == "cuda"
    assert "ResourceClaimTemplate" not in children
    assert "resourceClaims" not in pod_of(children)
    for version in ("1.30", *DRA_VERSIONS):
        kubernetes_validate.validate(children["Deployment"], version, strict=True)


def test_dra_claim_template_is_owned_named_by_the_pods_and_valid_where_served() -> None:
    children = kids({"dra": {"migProfile": "1g.18gb", "minMemory": "10Gi"}})
    template = children["ResourceClaimTemplate"]
    assert template["apiVersion"] == "resource.k8s.io/v1"
    assert template["metadata"]["ownerReferences"][0]["uid"] == UID
    request = template["spec"]["spec"]["devices"]["requests"][0]
    assert request["name"] == "gpu"
    assert request["exactly"] == {
        "deviceClassName": "mig.nvidia.com",
        "allocationMode": "ExactCount",
        "count": 1,
        "selectors": [
            {
                "cel": {
                    "expression": "device.capacity['gpu.nvidia.com'].memory.compareTo("
                    "quantity('10Gi')) >= 0"
                }
            },
            {"cel": {"expression": "device.attributes['gpu.nvidia.com'].profile == '1g.18gb'"}},
        ],
    }
    pod = pod_of(children)
    assert pod["resourceClaims"] == [
        {"name": "gpu", "resourceClaimTemplateName": template["metadata"]["name"]}
    ]
    assert server(children)["resources"]["claims"] == [{"name": "gpu"}]
    assert not [k for k in server(children)["resources"]["requests"] if "nvidia.com" in k]
    assert device_env(children) == "cuda"
    for version in DRA_VERSIONS:
        for child in (template, children["Deployment"]):
            kubernetes_validate.validate(child, version, strict=True)
    # before 1.34 there is no resource.k8s.io/v1, and the pod's claim had another shape
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(template, "1.30", strict=True)
    with pytest.raises(kubernetes_validate.ValidationError, match="resourceClaimTemplateName"):
        kubernetes_validate.validate(children["Deployment"], "1.30", strict=True)


def test_dra_device_class_defaults_and_template_renamed_on_change() -> None:
    whole = kids({"dra": {}})["ResourceClaimTemplate"]
    exactly = whole["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    assert exactly["deviceClassName"] == "gpu.nvidia.com" and "selectors" not in exactly
    custom = kids({"dra": {"deviceClassName": "gpu.example.com", "driver": "example.com"}})
    exactly = custom["ResourceClaimTemplate"]["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    assert exactly["deviceClassName"] == "gpu.example.com"
    # a template is immutable: another request is another template, and the pods follow it
    names = {whole["metadata"]["name"], custom["ResourceClaimTemplate"]["metadata"]["name"]}
    assert len(names) == 2
    again = kids({"dra": {}})["ResourceClaimTemplate"]["metadata"]["name"]
    assert again == whole["metadata"]["name"]


def test_selector_text_stays_one_value() -> None:
    hostile = "true\n- cel: {expression: 'false'}\nkind: Secret"
    children = kids({"dra": {"selectors": [hostile]}})
    exactly = children["ResourceClaimTemplate"]["spec"]["spec"]["devices"]["requests"][0]
    assert exactly["exactly"]["selectors"] == [{"cel": {"expression": hostile}}]
    assert children["ResourceClaimTemplate"]["kind"] == "ResourceClaimTemplate"


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"gpus": 1, "mig": {"profile": "1g.18gb"}}, "resources.mig"),
        ({"mig": {"profile": "1g.18gb"}, "sharedGpu": {}}, "resources.sharedGpu"),
        ({"gpus": 2, "dra": {}}, "resources.dra"),
        ({"sharedGpu": {}, "dra": {}}, "resources.dra"),
        ({"mig": {"profile": "18gb"}}, "resources.mig.profile"),
        ({"mig": {"profile": "1g.18gb", "count": 2}}, "resources.mig.count"),
        ({"dra": {"migProfile": "1g.18GB"}}, "resources.dra.migProfile"),
        ({"dra": {"minMemory": "lots"}}, "resources.dra.minMemory"),
        ({"sharedGpu": {"resourceName": "gpu.shared"}}, "resources.sharedGpu.resourceName"),
    ],
)
def test_contradictory_or_malformed_asks_are_refused_naming_the_field(
    resources: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSpecError) as err:
        kids(resources)
    assert err.value.field == field, err.value


def test_a_gpu_of_any_form_satisfies_what_needs_cuda() -> None:
    for resources in ({"mig": {"profile": "1g.18gb"}}, {"sharedGpu": {}}, {"dra": {}}):
        # on a shared GPU vLLM must be told its share of the memory (the next test)
        share = {"vllm": {"gpuMemoryUtilization": 0.2}} if "sharedGpu" in resources else {}
        children = kids(resources, engine="vllm", **share)
        assert children["Deployment"]
        kids(resources, model={**M, "quantization": "8bit"})
    with pytest.raises(InvalidSpecError) as err:
        kids({}, engine="vllm")
    assert "mig, sharedGpu or dra" in str(err.value)


def test_vllm_on_a_shared_gpu_is_told_its_share_of_the_memory() -> None:
    with pytest.raises(InvalidSpecError) as err:
        kids({"sharedGpu": {}}, engine="vllm")
    assert err.value.field == "vllm.gpuMemoryUtilization", err.value
    children = kids({"sharedGpu": {}}, engine="vllm", vllm={"gpuMemoryUtilization": 0.2})
    assert "--gpu-memory-utilization=0.2" in vllm_of(children)["args"]
    assert "--gpu-memory-utilization=0.9" in vllm_of(kids({"gpus": 1}, engine="vllm"))["args"]


def test_the_examples_ask_for_a_mig_slice_and_a_dra_claim() -> None:
    examples = example_crs()
    mig = examples["qwen3-reranker-0.6b-mig.yaml"]["spec"]["resources"]
    dra = examples["qwen3-reranker-0.6b-dra.yaml"]["spec"]["resources"]
    assert mig["mig"]["profile"] == "1g.18gb" and "gpus" not in mig
    assert dra["dra"]["migProfile"] == "1g.18gb"
