"""Kubernetes value types of the spec models, each with the JSON schema the CRD gives it.

Quantities and int-or-percent values are int-or-string fields; affinity and env valueFrom are
free-form objects; labels and annotations are string maps. The name patterns are the API
server's (DNS-1035 / DNS-1123 labels and subdomains, host names, env names, durations).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    Field,
    PlainValidator,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)

from reranker_operator.api.quantity import QUANTITY_PATTERN, parse_quantity

DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
DURATION = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
INT_OR_PERCENT_PATTERN = r"^[0-9]+%$"
_INT_OR_PERCENT = re.compile(INT_OR_PERCENT_PATTERN)


def int_or_string(pattern: str) -> dict[str, Any]:
    """The structural schema of a Kubernetes int-or-string field whose strings match `pattern`."""
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        "pattern": pattern,
    }


def _to_quantity(value: Any) -> str:
    """An int or quantity string, as a string; ValueError otherwise (bools are not ints)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        # pydantic turns only ValueError into a validation error naming the field
        msg = f"must be an integer or a quantity string such as 500m or 4Gi, got {value!r}"
        raise ValueError(msg)  # noqa: TRY004
    parse_quantity(value)  # raises ValueError naming the value
    return str(value)


def _to_int_or_percent(value: Any) -> int | str:
    """An int >= 0 or a percentage string such as '50%'."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be an integer or a percentage such as '50%', got {value!r}")  # noqa: TRY004
    if isinstance(value, str) and not _INT_OR_PERCENT.fullmatch(value):
        raise ValueError(f"{value!r} must be an integer or a percentage such as '50%'")
    if isinstance(value, int) and value < 0:
        raise ValueError("must be >= 0")
    return value


def _secret_name(value: Any, handler: ValidatorFunctionWrapHandler) -> str:
    """`value` as a Secret name, or a ValueError that says so."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(f"{value!r} is not a Secret name") from None


# A Secret's name: a DNS-1123 subdomain of at most 253 characters.
SecretName = Annotated[
    str, Field(max_length=253, pattern=DNS1123_SUBDOMAIN), WrapValidator(_secret_name)
]
# Kubernetes int-or-string fields; a plain validator keeps error paths free of union tags.
Quantity = Annotated[
    str, PlainValidator(_to_quantity), WithJsonSchema(int_or_string(QUANTITY_PATTERN))
]
IntOrPercent = Annotated[
    int | str,
    PlainValidator(_to_int_or_percent),
    WithJsonSchema(int_or_string(INT_OR_PERCENT_PATTERN)),
]
# A Kubernetes object the operator copies as it is (pod affinity, an EnvVarSource).
FreeForm = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
]
Labels = dict[str, Annotated[str, Field(description="Label value.")]]
Annotations = dict[str, Annotated[str, Field(description="Annotation value.")]]
