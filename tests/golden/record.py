"""Record what the operator renders today, so that a refactor can show it renders the same bytes.

For every RerankerService in examples/, under both engines (the example's own and the other one;
vLLM both behind our front and bare), the output of `reranker-operator render -f -` (or its error), and the output of
`reranker-operator crd`. `python tests/golden/record.py` rewrites the files under
tests/golden/render/ and tests/golden/crd.yaml; tests/test_golden_render.py compares them byte for
byte. Re-record only for a change meant to alter what is rendered, and say so in its commit.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterator
from pathlib import Path

import yaml

from reranker_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
# (file-name suffix, spec.engine, spec.vllm.front): vLLM behind our front (the default) and bare
VARIANTS = (
    ("transformers", "transformers", None),
    ("vllm", "vllm", None),
    ("vllm-bare", "vllm", False),
)


def _run(argv: list[str], stdin_text: str = "") -> str:
    """The CLI's stdout, or `exit N` plus its stderr when it fails."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv, stdout=out, stdin=io.StringIO(stdin_text))
    return out.getvalue() if code == 0 else f"exit {code}\n{err.getvalue()}"


def cases() -> Iterator[tuple[str, str]]:
    """(file name, rendered text) of every example's RerankerService under both engines."""
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for index, original in enumerate(yaml.safe_load_all(path.read_text())):
            if not original or original.get("kind") != "RerankerService":
                continue
            for suffix, engine, front in VARIANTS:
                doc = copy.deepcopy(original)
                doc["spec"]["engine"] = engine
                if front is not None:
                    doc["spec"].setdefault("vllm", {})["front"] = front
                name = f"{path.stem}.{index}.{suffix}"
                text = _run(["render", "-f", "-"], yaml.safe_dump(doc, sort_keys=False))
                yield f"{name}.yaml", text
                if text.startswith("exit") and "resources.gpus" in text:
                    # vLLM needs a GPU: render the example once more with one.
                    doc["spec"].setdefault("resources", {})["gpus"] = 1
                    gpu_doc = yaml.safe_dump(doc, sort_keys=False)
                    yield f"{name}-1gpu.yaml", _run(["render", "-f", "-"], gpu_doc)


def crd_text() -> str:
    """`reranker-operator crd`."""
    return _run(["crd"])


def record() -> None:
    """Rewrite every golden file."""
    out = GOLDEN / "render"
    out.mkdir(exist_ok=True)
    for stale in out.glob("*.yaml"):
        stale.unlink()
    for name, text in cases():
        (out / name).write_text(text)
    (GOLDEN / "crd.yaml").write_text(crd_text())


if __name__ == "__main__":
    record()
