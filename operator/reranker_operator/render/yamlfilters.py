"""Jinja filters that put values into YAML templates as data, never as raw YAML text."""

from __future__ import annotations

import json
import re
from typing import Any

# Characters YAML 1.1 readers reject or treat as line breaks inside a quoted scalar; JSON leaves
# them raw with ensure_ascii=False, so they are escaped here (the result is still valid JSON).
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def toyaml(value: Any) -> str:
    """`value` as a one-line JSON flow value, which YAML parses back to the same data.

    Every string becomes a double-quoted scalar with newlines and quotes escaped, so no value can
    start a new key, list item or document wherever the template places it.
    """
    text = json.dumps(value, ensure_ascii=False, sort_keys=False, allow_nan=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
