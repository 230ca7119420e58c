"""The one JSON layer of the scoring routes: bytes in, a validated body model out, 4xx for anything else.

`json.loads` alone lets three kinds of input through to a 500: nesting deeper than the
interpreter's recursion limit (RecursionError), integers longer than Python's 4,300-digit
conversion limit (ValueError), and strings holding a lone UTF-16 surrogate (`"\\ud800"`), which
JSON allows but no tokenizer can encode. Each is answered here with a 400 or a 422 naming where it
is; nothing malformed reaches the engine.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reranker_server.api.errors import APIError, field_path, validation_error

MAX_INT_DIGITS = 20  # every integer field is a count or a size: 20 digits is more than 2**64

Model = TypeVar("Model", bound=BaseModel)


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body; APIError 400 (field "body") for anything that is not plain JSON."""

    def malformed(why: str) -> APIError:
        return APIError(400, f"body: malformed JSON: {why}", field="body", type="json_invalid")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed(f"not UTF-8 at byte {exc.start}") from None
    try:
        return json.loads(text, parse_int=_int, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise malformed(f"{exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise malformed("nested too deeply") from None
    except ValueError as exc:
        raise malformed(str(exc)) from None


def check_text(value: Any) -> None:
    """APIError 422 naming the field of the first string that is not valid Unicode (a lone
    surrogate), in a walk of the whole value without recursion."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        loc, item = stack.pop()
        if isinstance(item, str):
            if item.isascii():  # no surrogate, without copying the string (a flag CPython keeps)
                continue
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                field = field_path(("body", *loc))
                raise APIError(
                    422,
                    f"{field}: not valid Unicode (a lone surrogate \\u{ord(item[exc.start]):04x} "
                    f"at character {exc.start})",
                    field=field,
                    type="string_unicode",
                ) from None
        elif isinstance(item, dict):
            stack.extend(((*loc, str(k)), v) for k, v in reversed(item.items()))
            stack.extend(((*loc, str(k)), str(k)) for k in item)
        elif isinstance(item, list):
            stack.extend(((*loc, i), v) for i, v in reversed(list(enumerate(item))))


def json_object(raw: bytes) -> dict[str, Any]:
    """A body that must be a JSON object of valid Unicode strings."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise APIError(422, "body: must be a JSON object", field="body", type="type_error")
    check_text(data)
    return data


def validated(model: type[Model], data: dict[str, Any]) -> Model:
    """`data` as `model`; APIError 422 naming the first invalid field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # loc is relative to the body: prefix it, as FastAPI does, so a field named like a
        # parameter location ("query") is not taken for one
        raise validation_error([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
