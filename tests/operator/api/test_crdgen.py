"""The CRD generator's choices: which Python defaults become CRD defaults, and no keyword a
structural schema does not take."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import BaseModel

from reranker_operator.api import crdgen
from reranker_operator.api.spec import ImageSpec, RerankerServiceSpec, ResourceAmounts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ImageSpec(), {}),  # the API server then defaults each field inside
        (ResourceAmounts(cpu="1", memory="4Gi"), {"cpu": "1", "memory": "4Gi"}),
        (ImageSpec(tag="v1"), {"tag": "v1"}),
        (False, False),
        (0, 0),
        ("auto", "auto"),
        (["ReadWriteOnce"], ["ReadWriteOnce"]),
        ({"grafana_dashboard": "1"}, {"grafana_dashboard": "1"}),
    ],
)
def test_defaults_that_set_something_are_kept(value: Any, expected: Any) -> None:
    assert crdgen.crd_default(value) == expected


@pytest.mark.parametrize("value", [None, [], {}, ResourceAmounts()])
def test_defaults_that_set_nothing_are_left_out(value: Any) -> None:
    assert crdgen.crd_default(value) is crdgen._NO_DEFAULT


def test_unknown_keywords_are_refused() -> None:
    with pytest.raises(ValueError, match="examples"):
        crdgen._structural({"type": "string", "examples": ["x"]}, {})


def test_every_model_field_is_in_the_schema() -> None:
    def models_in(annotation: Any) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in get_args(annotation) for m in models_in(arg)]

    def count(model: type[BaseModel]) -> int:
        """Fields of `model` and of the models inside it."""
        return sum(
            1 + sum(count(m) for m in models_in(info.annotation))
            for info in model.model_fields.values()
        )

    def nodes(schema: dict[str, Any]) -> int:
        target = schema.get("items", schema) if schema.get("type") == "array" else schema
        return sum(1 + nodes(sub) for sub in target.get("properties", {}).values())

    assert nodes(crdgen.spec_schema()) == count(RerankerServiceSpec)
