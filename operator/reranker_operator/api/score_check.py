"""`spec.scoreCheck`: what each server pod scores before it turns Ready (the built-in sanity, the
resource's probes, parity with the scores a Ready revision of the same model gave). The shared
facts (paths, env, probe JSON, tolerances) are reranker_contract.score_check's."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field

from reranker_contract.score_check import (
    PARITY_TOLERANCES,
    PROBE_SCORE_TOLERANCE,
    PROBES_KEY,
    BuiltinCheck,
    ScoreChange,
)
from reranker_operator.api.base import SpecModel
from reranker_operator.api.cel_rules import Rule
from reranker_operator.api.fieldtypes import DNS1123_LABEL, DNS1123_SUBDOMAIN

MAX_PROBES = 16
MAX_DOCUMENTS = 32
# The rendered probes must fit a ConfigMap (1 MiB) with room to spare; the bounds below allow
# more in the worst case, so `probes_too_large` checks the rendered size (api.checks).
MAX_PROBES_JSON_BYTES = 512 * 1024
CONFIG_MAP_KEY = r"^[-._a-zA-Z0-9]+$"
# The smallest tolerance accepted: what a restart on the same setup reproduces (no tolerance
# below it can pass); a minimum, as a CRD schema here has no exclusive bounds.
MIN_TOLERANCE = PARITY_TOLERANCES[ScoreChange.NONE]

DESCRIPTION = (
    "Before a pod turns Ready its server scores a probe set and checks the scores: built-in "
    "sanity, the probes' expectations, and parity with the scores a Ready revision of the same "
    "model and revision gave (the operator's <name>-score-record ConfigMap). A pod that fails "
    "stays not-ready, so the rolling update (maxUnavailable 0) holds and the old pods keep "
    "serving. Engine transformers, or vllm behind the bundled server (vllm.front, the default: "
    "it scores the probes through vLLM); bare vLLM checks nothing."
)

Index = Annotated[
    int, Field(ge=0, le=MAX_DOCUMENTS - 1, description="A document's index in documents.")
]
Score = Annotated[float, Field(ge=0, le=1, description="An expected score in [0, 1].")]
Document = Annotated[str, Field(min_length=1, max_length=1024, description="A document's text.")]


class ProbeExpectation(SpecModel):
    """What the probe's scores must show; empty: nothing but parity (its scores are recorded
    and compared across changes)."""

    top: int | None = Field(
        None,
        ge=0,
        le=MAX_DOCUMENTS - 1,
        description="Index (in documents) of the document that must score highest.",
    )
    order: list[Index] | None = Field(
        None,
        min_length=2,
        max_length=MAX_DOCUMENTS,
        description="Document indexes from best to worst, each at most once (a subset of the "
        "documents may be listed): each must score above the next.",
    )
    scores: list[Score] | None = Field(
        None,
        min_length=2,
        max_length=MAX_DOCUMENTS,
        description="The score each document must get, one per document, within tolerance.",
    )
    tolerance: float | None = Field(
        None,
        ge=MIN_TOLERANCE,
        le=1,
        description="Absolute tolerance of scores (scores are in [0, 1]); unset: "
        f"{PROBE_SCORE_TOLERANCE}.",
    )

    rules = (
        Rule(
            "!has(self.tolerance) || has(self.scores)",
            "tolerance applies to scores: set scores or drop tolerance",
            lambda e: e.tolerance is None or e.scores is not None,
            field_path=".tolerance",
        ),
        Rule(
            "!has(self.order) || self.order.all(i, self.order.exists_one(j, j == i))",
            "order lists each document index at most once",
            lambda e: e.order is None or len(set(e.order)) == len(e.order),
            field_path=".order",
        ),
    )


_EXPECT = "!has(self.expect) || !has(self.expect.{0}) || "


class ScoreProbe(SpecModel):
    """One query with documents, scored as a rerank request would be."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Unique name of the probe: the status and the report name it when it fails.",
    )
    query: str = Field(min_length=1, max_length=1024, description="The query.")
    documents: list[Document] = Field(
        min_length=2,
        max_length=MAX_DOCUMENTS,
        description=f"The documents scored with the query (2 to {MAX_DOCUMENTS}).",
    )
    instruction: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Task instruction of instruction-aware rerankers (Qwen3); unset: the "
        "server's default (model.instruction).",
    )
    expect: ProbeExpectation | None = None

    @property
    def expected(self) -> ProbeExpectation:
        """The expectation, empty when unset."""
        return self.expect or ProbeExpectation()

    rules = (
        Rule(
            _EXPECT.format("top") + "self.expect.top < size(self.documents)",
            "expect.top must be the index of one of the documents",
            lambda p: p.expected.top is None or p.expected.top < len(p.documents),
            field_path=".expect.top",
            explain=lambda p: (
                f"{p.expected.top} is not an index of the {len(p.documents)} documents"
            ),
        ),
        Rule(
            _EXPECT.format("order") + "self.expect.order.all(i, i < size(self.documents))",
            "expect.order must list indexes of the documents",
            lambda p: (
                p.expected.order is None or all(i < len(p.documents) for i in p.expected.order)
            ),
            field_path=".expect.order",
            explain=lambda p: (
                f"{max(p.expected.order or [0])} is not an index of the {len(p.documents)} documents"
            ),
        ),
        Rule(
            _EXPECT.format("scores") + "size(self.expect.scores) == size(self.documents)",
            "expect.scores needs one score per document",
            lambda p: p.expected.scores is None or len(p.expected.scores) == len(p.documents),
            field_path=".expect.scores",
            explain=lambda p: (
                f"{len(p.expected.scores or [])} scores for {len(p.documents)} documents: give one "
                "score per document"
            ),
        ),
    )

    def as_json(self) -> dict[str, Any]:
        """The probe in the contract's JSON shape (PROBES_KEY): unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ProbesConfigMap(SpecModel):
    """A ConfigMap of the resource's namespace holding more probes, in the shape of
    scoreCheck.probes (a JSON list). It must exist (the pods wait for it); a change of its
    content reaches pods started afterwards (kubectl rollout restart to check it now)."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Name of the ConfigMap.",
    )
    key: str = Field(
        PROBES_KEY,
        min_length=1,
        max_length=253,
        pattern=CONFIG_MAP_KEY,
        description="Key holding the probes' JSON.",
    )


class BuiltinChecks(SpecModel):
    """The model-agnostic sanity every pod runs on built-in probes: scores finite, not all
    equal across clearly different documents, a document scored alone as in a batch, and the
    answering document ranked above unrelated ones (relevance)."""

    relevance: bool = Field(
        True,
        description="Require the document that answers a built-in probe's query to rank "
        "first. Every trained reranker passes it; turn it off only for untrained (random "
        "weights) or test models, which score at random.",
    )

    def enabled(self) -> list[BuiltinCheck]:
        """The built-in checks to run (SCORE_CHECK_BUILTINS)."""
        return [c for c in BuiltinCheck if self.relevance or c is not BuiltinCheck.RELEVANCE]


def _tolerance(kind: ScoreChange, what: str) -> Any:
    return Field(
        None,
        ge=MIN_TOLERANCE,
        le=1,
        description=f"Largest score change allowed when {what} changed (default "
        f"{PARITY_TOLERANCES[kind]}).",
    )


class ParityTolerances(SpecModel):
    """Absolute tolerances on scores in [0, 1], per kind of change since the recorded revision
    (the largest of the kinds that changed applies); unset: the defaults."""

    image: float | None = _tolerance(ScoreChange.IMAGE, "the server image")
    engine: float | None = _tolerance(ScoreChange.ENGINE, "the engine")
    attention: float | None = _tolerance(ScoreChange.ATTENTION, "the attention implementation")
    device: float | None = _tolerance(
        ScoreChange.DEVICE, "the processor model (a node pool of another GPU or CPU)"
    )
    dtype: float | None = _tolerance(ScoreChange.DTYPE, "the dtype")
    quantization: float | None = _tolerance(ScoreChange.QUANTIZATION, "the quantization")

    def overrides(self) -> dict[str, float]:
        """{change kind: tolerance} of the tolerances set (SCORE_PARITY_TOLERANCES)."""
        return self.model_dump(mode="json", exclude_none=True)


class ParitySpec(SpecModel):
    """Parity with the operator's record: the probes' scores of the last Ready revision of the
    same model and revision. A change of image, engine, attention, processor, dtype or
    quantization must keep every probe's score within its tolerance; a model or revision change
    starts a new record."""

    enabled: bool = Field(True, description="Compare the scores with the record.")
    tolerances: ParityTolerances = Field(default_factory=ParityTolerances)


def _repeated(check: ScoreCheckSpec) -> list[str]:
    names = [p.name for p in check.probes]
    return sorted({n for n in names if names.count(n) > 1})


class ScoreCheckSpec(SpecModel):
    """The score check before Ready (see DESCRIPTION)."""

    enabled: bool = Field(
        True,
        description="Check the scores before Ready; false: a pod is Ready once the model is "
        "loaded.",
    )
    builtins: BuiltinChecks = Field(default_factory=BuiltinChecks)
    probes: list[ScoreProbe] = Field(
        default_factory=list,
        max_length=MAX_PROBES,
        description="The resource's own probes: queries with documents and what their scores "
        "must show (top, order, scores). Rendered into the <name>-score-probes ConfigMap.",
    )
    probes_config_map: ProbesConfigMap | None = None
    parity: ParitySpec = Field(default_factory=ParitySpec)

    rules = (
        Rule(
            "!has(self.probes) || self.probes.all(p, self.probes.exists_one(q, q.name == p.name))",
            "probe names must be unique",
            lambda s: len({p.name for p in s.probes}) == len(s.probes),
            field_path=".probes",
            explain=lambda s: f"probe names must be unique: {', '.join(_repeated(s))} repeated",
        ),
    )

    def probes_json(self) -> str:
        """The inline probes as the PROBES_KEY file's JSON text."""
        return json.dumps([p.as_json() for p in self.probes], ensure_ascii=False)


def probes_too_large(check: ScoreCheckSpec) -> str | None:
    """Why the inline probes do not fit the rendered ConfigMap, or None."""
    size = len(check.probes_json().encode())
    if size > MAX_PROBES_JSON_BYTES:
        return f"{size} bytes of probes as JSON; at most {MAX_PROBES_JSON_BYTES} fit"
    return None
