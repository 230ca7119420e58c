"""The score check: what the server scores before it turns ready, and what the operator records.

Before `/ready` answers 200 the server scores a probe set (built-in probes and the resource's
own) and checks the scores: built-in sanity that holds for every trained reranker, the
resource's expectations, and parity with the scores a Ready revision of the same model gave
(the operator's record). A failed check keeps the pod not-ready: with the rendered Deployment's
`maxUnavailable: 0` the rollout holds and the old pods keep serving. `GET SCORE_CHECK_PATH`
returns the report (`ScoreCheckReport` below, as JSON); the operator reads it from the pods to
say which probe failed and to write the record.

Pure data, shared by the server (which runs the check) and the operator (which renders the
probes, mounts the record, reads the reports and writes the record).
"""

from __future__ import annotations

from enum import StrEnum

SCORE_CHECK_PATH = "/score-check"  # GET: the report (JSON); never behind the API key

# the rendered ConfigMap of the resource's probes, mounted read-only into the server container
PROBES_DIR = "/etc/reranker/score-probes"
PROBES_KEY = "probes.json"  # a JSON list of probes (the Probe shape below)
# the operator's record of a Ready revision's scores, mounted read-only (optional: absent until
# the first revision is Ready); the ConfigMap is written by the operator, never rendered
RECORD_DIR = "/etc/reranker/score-record"
RECORD_KEY = "record.json"


class ScoreCheckEnv(StrEnum):
    """The server's environment variables for the check (each also a `--flag`)."""

    SCORE_CHECK = "SCORE_CHECK"  # "on" (default) or "off": off, /ready does not wait for it
    SCORE_CHECK_BUILTINS = "SCORE_CHECK_BUILTINS"  # comma list of BuiltinCheck values to run
    # comma list of probe files in PROBES_DIR (the operator projects the inline probes as
    # PROBES_KEY and spec.scoreCheck.probesConfigMap's key as configmap-probes.json); unset: none
    SCORE_PROBES_FILE = "SCORE_PROBES_FILE"
    SCORE_RECORD_FILE = "SCORE_RECORD_FILE"  # RECORD_DIR/RECORD_KEY (may not exist)
    # tolerance overrides, JSON {change kind: absolute tolerance} (spec.scoreCheck.parity)
    SCORE_PARITY_TOLERANCES = "SCORE_PARITY_TOLERANCES"
    SERVER_IMAGE = "SERVER_IMAGE"  # the image the pod runs (an image bump is a change kind)


class ScoringEngine(StrEnum):
    """The engine that scores a pod's requests (a report's `setup.engine`; a change of it is
    the `engine` change kind): the server's own, or vLLM behind it (ENGINE_URL). The same
    names as spec.engine's values."""

    TRANSFORMERS = "transformers"
    VLLM = "vllm"


class BuiltinCheck(StrEnum):
    """Model-agnostic sanity on the built-in probes (docs/operator.md, "The score check")."""

    FINITE = "finite"  # every score is a finite number
    SPREAD = "spread"  # clearly different documents do not all get the same score
    CONSISTENT = "consistent"  # a document scored alone gets its score in a batch
    RELEVANCE = "relevance"  # the answering document outranks unrelated ones (trained models)


class CheckState(StrEnum):
    """The report's `state`."""

    PENDING = "pending"  # the model is loading or the probes are being scored
    PASSED = "passed"
    FAILED = "failed"
    DISABLED = "disabled"  # SCORE_CHECK=off


class ScoreChange(StrEnum):
    """What differs between the recorded revision and this pod when model and revision do not:
    each kind has its own parity tolerance (the largest of the kinds that changed applies)."""

    NONE = "none"  # a restart, a rescheduled pod, a replica more on the same processor model
    IMAGE = "image"
    # another processor model (a node pool of another GPU or CPU): other kernels, another
    # reduction order; compared only where the pod knows its processor (not behind vLLM)
    DEVICE = "device"
    ENGINE = "engine"
    ATTENTION = "attention"
    DTYPE = "dtype"
    QUANTIZATION = "quantization"


# Absolute tolerances on scores in [0, 1] (sigmoid of the model's logit): how far a probe's
# score may move under each change kind. A restart on the same setup reproduces scores to
# rounding; another image or engine computes the same arithmetic in another order; another
# attention kernel reorders the reductions; another processor model runs other kernels (in
# half precision its scores move by up to ~1e-2 on real models); bf16/fp16 keep 8/11 mantissa bits; 8/4-bit weights
# move scores by a few hundredths on real models.
PARITY_TOLERANCES: dict[ScoreChange, float] = {
    ScoreChange.NONE: 1e-4,
    ScoreChange.IMAGE: 1e-3,
    ScoreChange.ENGINE: 2e-3,
    ScoreChange.ATTENTION: 5e-3,
    ScoreChange.DEVICE: 2e-2,
    ScoreChange.DTYPE: 5e-2,
    ScoreChange.QUANTIZATION: 1e-1,
}

# A probe's expect.tolerance when unset: how far a score may be from its expect.scores entry
PROBE_SCORE_TOLERANCE = 0.05

# The condition reason and event reasons the operator reports
SCORE_CHECK_FAILED_REASON = "ScoreCheckFailed"
SCORE_RECORDED_REASON = "ScoresRecorded"
SCORE_RECORD_RESET_REASON = "ScoreRecordReset"

# The report (JSON), as GET SCORE_CHECK_PATH returns it:
# {
#   "state": CheckState,
#   "failed": "<check name>" | null,          # the first failed check
#   "message": "<one line: what failed and what the pod scored>" | "",
#   "checked_at": <unix seconds> | null, "duration_seconds": <float> | null,
#   "identity": {"model": str, "revision": str | null},
#   "setup": {"engine": str, "image": str | null, "dtype": str, "quantization": str,
#             "attention": str, "device": str | null},  # device: the processor model
#   "changes": [ScoreChange, ...], "tolerance": <float> | null,   # parity against the record
#   "checks": [{"name": str, "kind": "builtin" | "probe" | "parity", "passed": bool | null,
#               "skipped": "<why>" | null, "message": str}],
#   "probes": [{"name": str, "query": str, "documents": [str], "instruction": str | null,
#               "scores": [float]}],                            # every probe's scores
# }
# A probe (PROBES_KEY, spec.scoreCheck.probes) is
#   {"name": str, "query": str, "documents": [str, ...], "instruction": str (optional),
#    "expect": {"top": int (optional: the index of the document that must rank first),
#               "order": [int, ...] (optional: indexes from best to worst; pairwise),
#               "scores": [float, ...] (optional), "tolerance": float (optional, for scores)}}
# The record (RECORD_KEY) is
#   {"identity": {...}, "setup": {...}, "recordedAt": RFC 3339, "pod": str,
#    "probes": [{"name", "query", "documents", "instruction", "scores"}]}
# Parity compares a probe of this pod with the recorded probe of the same name, query,
# documents and instruction; a record of another identity is not compared (skipped, said so).
