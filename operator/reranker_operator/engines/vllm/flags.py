"""spec.vllm.extraArgs read as the pinned vLLM's `vllm serve` parser reads them: a flag it does
not have makes vLLM exit at start (CrashLoopBackOff), so the operator refuses it first.

The parser (argparse with vLLM's FlexibleArgumentParser) takes `--flag value`, `--flag=value`,
`--flag_name` for `--flag-name`, `--json-flag.key=value` for one key of a JSON flag, `-O3`, and
any unambiguous prefix of a long flag. The flag list is generated from that parser
(operator/reranker_operator/engines/vllm/known_flags.py). It is checked here, not by a CEL rule: 430 names with the prefix,
underscore and dotted-key rules would cost more than the rest of the CRD's rules together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from reranker_operator.engines.vllm.facts import VLLM_OWNED_FLAGS
from reranker_operator.engines.vllm.known_flags import VLLM_FLAGS_VERSION, VLLM_SERVE_FLAGS

# Flags the guides still use that the pinned vLLM no longer has, and what to write instead.
RENAMED = {
    "--disable-log-requests": "requests are not logged unless --enable-log-requests is given: "
    "drop it (--no-enable-log-requests says the same)",
}
_NUMBER = re.compile(r"^-\d+(\.\d+)?$")  # a negative value, not a flag
_LONG = sorted(f for f in VLLM_SERVE_FLAGS if f.startswith("--"))


def flag_name(arg: str) -> str | None:
    """The flag `arg` spells as vLLM normalises it (`--max_num_seqs=8` -> `--max-num-seqs`,
    `--compilation-config.mode=3` -> `--compilation-config`); None for a value."""
    if not arg.startswith("-") or _NUMBER.match(arg):
        return None
    name = arg.split("=", 1)[0]
    if name.startswith("--"):
        return "--" + name[2:].split(".", 1)[0].replace("_", "-")
    return name


def resolve(arg: str) -> str | None:
    """The vLLM flag `arg` reaches (itself, or the one flag it is a prefix of), else None."""
    name = flag_name(arg)
    if name is None or name in VLLM_SERVE_FLAGS:
        return name
    if not name.startswith("--"):
        return "--optimization-level" if name.startswith("-O") and len(name) > 2 else None
    hits = [f for f in _LONG if f.startswith(name)]
    return hits[0] if len(hits) == 1 else None


def unknown_flag_problems(args: Iterable[str], field: str) -> Iterator[tuple[str, str]]:
    """(field[i], message) for each argument vLLM's parser would refuse."""
    for i, arg in enumerate(args):
        name = flag_name(arg)
        if name is None or resolve(arg) is not None:
            continue
        hint = RENAMED.get(name)
        if hint:
            why = f"is not a flag of vLLM {VLLM_FLAGS_VERSION}: {hint}"
        elif name.startswith("--") and [f for f in _LONG if f.startswith(name)]:
            why = f"is ambiguous in vLLM {VLLM_FLAGS_VERSION} (spell the whole flag)"
        else:
            why = (
                f"is not a flag of vLLM {VLLM_FLAGS_VERSION} (`vllm serve --help`); vLLM "
                "would refuse to start"
            )
        yield f"{field}[{i}]", f"{name} {why}"


def owned_flag_problems(args: Iterable[str], field: str) -> Iterator[tuple[str, str]]:
    """vLLM's parser also takes `--max_model_len` and unambiguous prefixes (`--max-model`):
    those may not reach an operator-set flag either (the CRD rule sees exact names only)."""
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0].replace("_", "-")
        hits = [f for f in VLLM_OWNED_FLAGS if f.startswith("--") and f.startswith(name)]
        if name in VLLM_OWNED_FLAGS or hits:
            flag = name if name in VLLM_OWNED_FLAGS else hits[0]
            yield f"{field}[{i}]", f"{arg!r} reaches {flag}, which the operator sets"
