"""`spec.resources`' ways to ask for less than a whole GPU: a MIG slice, a shared (time-sliced
or MPS) GPU, or a Dynamic Resource Allocation claim; and the CEL selectors a claim is made of.

Each form gives the pod exactly one CUDA device (a process sees one MIG slice, and the server
runs on `cuda:0`), so none has a count: `resources.gpus` stays the way to ask for several whole
GPUs (vLLM's tensor parallelism).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from reranker_operator.api.base import SpecModel
from reranker_operator.api.fieldtypes import DNS1123_SUBDOMAIN, Quantity

# NVIDIA's GPU-instance profiles: <compute slices>g.<memory>gb (1g.18gb on an H200, 3g.40gb on
# an A100 80GB); the device plugin's mixed strategy advertises each as nvidia.com/mig-<profile>.
MIG_PROFILE = r"^[1-7]g\.[1-9][0-9]{0,3}gb$"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
# An extended resource name: <domain>/<name>, the name a qualified-name part.
EXTENDED_RESOURCE = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
WHOLE_GPU_RESOURCE = "nvidia.com/gpu"
NVIDIA_DRIVER = "gpu.nvidia.com"  # NVIDIA's DRA driver: its device class, attribute domain
GPU_DEVICE_CLASS = "gpu.nvidia.com"
MIG_DEVICE_CLASS = "mig.nvidia.com"
CLAIM_NAME = "gpu"  # the pod's resourceClaims entry and the container's claims entry
DRA_API = "resource.k8s.io/v1 (Kubernetes >= 1.34)"


class MigSpec(SpecModel):
    """One MIG slice per pod, as the NVIDIA device plugin's mixed strategy advertises it: the
    extended resource nvidia.com/mig-<profile>. A CUDA process uses one MIG device, so a pod
    asks for one slice; choose its size with `reranker-operator loadtest` (headroom)."""

    profile: str = Field(
        min_length=6,
        max_length=16,
        pattern=MIG_PROFILE,
        description="GPU-instance profile, <compute slices>g.<memory>gb as `nvidia-smi mig "
        "-lgip` names it (e.g. 1g.18gb on an H200, 1g.10gb on an A100 80GB); the pod asks "
        f"for one {MIG_RESOURCE_PREFIX}<profile>.",
    )

    def resource_name(self) -> str:
        return f"{MIG_RESOURCE_PREFIX}{self.profile}"


class SharedGpuSpec(SpecModel):
    """A share of a GPU the cluster's device plugin offers several pods at once (time-slicing
    or MPS). With `renameByDefault: true` in its sharing config NVIDIA's device plugin
    advertises the replicas as nvidia.com/gpu.shared; without it they keep the name
    nvidia.com/gpu (then ask with resources.gpus: 1). Each replica of a GPU is one pod's share
    of compute time, not of memory: every pod on it sees the whole GPU's memory, so the
    replicas-per-GPU must be sized so that their models and batches fit together."""

    resource_name: str = Field(
        SHARED_GPU_RESOURCE,
        min_length=3,
        max_length=253,
        pattern=EXTENDED_RESOURCE,
        description="The extended resource the device plugin advertises the shares as; the "
        "pod asks for one.",
    )


class DraSpec(SpecModel):
    """One GPU device claimed through Dynamic Resource Allocation (resource.k8s.io/v1,
    Kubernetes >= 1.34, with a DRA driver such as NVIDIA's): the operator creates a
    ResourceClaimTemplate (owned by the RerankerService; renamed when its request changes,
    templates being immutable) and each pod claims one device from it."""

    device_class_name: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description=f"DeviceClass to allocate from; unset: {MIG_DEVICE_CLASS} with migProfile, "
        f"else {GPU_DEVICE_CLASS} (NVIDIA's DRA driver).",
    )
    driver: str = Field(
        NVIDIA_DRIVER,
        min_length=1,
        max_length=63,
        pattern=DNS1123_SUBDOMAIN,
        description="The DRA driver whose device attributes and capacities minMemory and "
        "migProfile select on (the domain of device.attributes[...] and device.capacity[...]).",
    )
    min_memory: Quantity | None = Field(
        None,
        description="Only devices with at least this much memory (e.g. 16Gi): the selector "
        "device.capacity[driver].memory >= minMemory.",
    )
    mig_profile: str | None = Field(
        None,
        min_length=6,
        max_length=16,
        pattern=MIG_PROFILE,
        description="Only MIG devices of this profile (e.g. 1g.18gb): the selector "
        "device.attributes[driver].profile == migProfile.",
    )
    selectors: list[
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=10240,
                description="A CEL expression over `device` that must be true.",
            ),
        ]
    ] = Field(
        default_factory=list,
        max_length=8,
        description="More CEL selector expressions, e.g. "
        "device.attributes['gpu.nvidia.com'].productName.startsWith('NVIDIA H').",
    )

    def device_class(self) -> str:
        """The DeviceClass the claim allocates from."""
        if self.device_class_name is not None:
            return self.device_class_name
        return MIG_DEVICE_CLASS if self.mig_profile is not None else GPU_DEVICE_CLASS

    def cel_selectors(self) -> list[str]:
        """The claim's selector expressions: memory, MIG profile, then the user's own. The
        values come from fields whose patterns admit no quote or backslash."""
        out = []
        if self.min_memory is not None:
            out.append(
                f"device.capacity['{self.driver}'].memory.compareTo("
                f"quantity('{self.min_memory}')) >= 0"
            )
        if self.mig_profile is not None:
            out.append(f"device.attributes['{self.driver}'].profile == '{self.mig_profile}'")
        return [*out, *self.selectors]
