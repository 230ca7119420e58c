"""From signals to verdicts: the bottleneck, its numbers, and the remedy in the resource's terms."""

from __future__ import annotations

from dataclasses import dataclass

from reranker_operator.tools.diagnose.signals import Signals

QUEUE_P95_S = 0.2  # the guides' queue-time threshold
BUSY = 0.8  # a model worker busy this share of the time is saturated
TOKENIZE_CORES = 0.5  # tokenization keeping half a core or more busy...
PADDING = 0.3  # ...padding above 30% of the padded tokens...
PREFIX_SHARE = 0.5  # ...fewer than half the pairs of a Qwen3 model on a shared prefix...
TRUNCATED = 0.05  # ...more than 5% of documents cut
SMALL_REQUESTS = 0.25  # documents per request below a quarter of the batch size
MIN_TRAFFIC = 0.05  # requests per second below which there is nothing to diagnose


@dataclass(frozen=True)
class Verdict:
    name: str
    evidence: str
    remedy: str


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g} s"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def diagnose(s: Signals) -> list[Verdict]:
    """Every bottleneck the signals show, the most pressing first; [] means none."""
    out: list[Verdict] = []
    if s.requests_per_s + s.rejected_per_s < MIN_TRAFFIC:
        return out
    queue_slow = s.queue_time_p95_s is not None and s.queue_time_p95_s > QUEUE_P95_S
    if queue_slow or s.rejected_per_s > 0:
        out.append(
            Verdict(
                "queue-bound",
                f"queue time p95 {_s(s.queue_time_p95_s)} (threshold {QUEUE_P95_S} s); "
                f"{s.rejected_per_s:.3g} requests/s refused with 429 (queue full); the model busy "
                f"{_pct(s.inference_busy)} of the time",
                "more replicas: raise spec.autoscaling.maxReplicas (or spec.replicas without "
                "autoscaling), and scale on queued work; spec.server.maxConcurrentRequests bounds "
                "the queue (429 beyond it)",
            )
        )
    fill = s.batch_size_mean / s.max_batch_size if s.batch_size_mean else None
    if s.inference_busy >= BUSY and s.fronts_vllm:
        out.append(
            Verdict(
                "compute-bound",
                f"every call slot to vLLM is busy {_pct(s.inference_busy)} of the time; calls "
                f"hold {s.batch_size_mean or 0:.1f} pairs ({_pct(fill)} of server.maxBatchSize "
                f"{s.max_batch_size})",
                "vLLM is saturated: more replicas, a bigger GPU, spec.model.dtype "
                "float16/bfloat16, or a quantized checkpoint (vllm.extraArgs --quantization); "
                "more calls in flight only help while vLLM's KV-cache panel shows room",
            )
        )
    elif s.inference_busy >= BUSY:
        out.append(
            Verdict(
                "compute-bound",
                f"the model runs {_pct(s.inference_busy)} of the time per worker; batches hold "
                f"{s.batch_size_mean or 0:.1f} sequences ({_pct(fill)} of server.maxBatchSize "
                f"{s.max_batch_size})",
                "more compute per replica: a bigger GPU, spec.model.dtype float16/bfloat16, "
                "spec.model.quantization 8bit/4bit, or more replicas",
            )
        )
    if s.tokenization_busy >= TOKENIZE_CORES and s.tokenization_busy >= 0.5 * s.inference_busy:
        out.append(
            Verdict(
                "tokenization-bound",
                f"tokenizing keeps {s.tokenization_busy:.2f} cores busy, the model "
                f"{_pct(s.inference_busy)} of its time",
                "more CPU for the server: raise spec.resources.requests.cpu / limits.cpu; very long "
                "documents cost tokenization before truncation: send shorter ones "
                "(maxTokensPerDoc, or cut them client-side)",
            )
        )
    if s.padding_ratio_mean is not None and s.padding_ratio_mean > PADDING:
        out.append(
            Verdict(
                "padding waste",
                f"{_pct(s.padding_ratio_mean)} of the padded tokens in each forward are padding "
                f"(threshold {_pct(PADDING)})",
                "documents of very different lengths share forwards: lower spec.server."
                "maxBatchTokens so length-sorted batches stay narrow, or send documents of similar "
                "length together",
            )
        )
    low_reuse = s.prefix_reuse_share is not None and s.prefix_reuse_share < PREFIX_SHARE
    if s.causal and low_reuse and s.fronts_vllm:
        out.append(
            Verdict(
                "low prefix reuse",
                f"{_pct(s.prefix_reuse_share)} of prompt tokens hit vLLM's prefix cache "
                f"(threshold {_pct(PREFIX_SHARE)}); {s.documents_per_request or 0:.1f} documents "
                "per request",
                "send more documents per query (a request's documents share its prompt prefix); "
                "check that vLLM's prefix caching is on (vllm.enablePrefixCaching) and that its KV cache "
                "keeps prefixes (raise vllm.gpuMemoryUtilization, lower vllm.maxModelLen)",
            )
        )
    elif s.causal and low_reuse:
        out.append(
            Verdict(
                "low prefix reuse",
                f"{_pct(s.prefix_reuse_share)} of scored pairs reused a shared prefix KV cache "
                f"(threshold {_pct(PREFIX_SHARE)}); {s.documents_per_request or 0:.1f} documents per "
                "request",
                "send more documents per query (a Qwen3 request's documents share its prompt "
                "prefix from 3 on); if requests are large, check /info shortcuts (prefix_kv) and "
                "the server log for why the prefix path is off",
            )
        )
    if s.truncated_share is not None and s.truncated_share > TRUNCATED:
        out.append(
            Verdict(
                "requests truncated",
                f"{_pct(s.truncated_share)} of documents were cut to fit the model's max length",
                "raise spec.model.maxLength (up to the model's limit) or send shorter documents: "
                "the cut text was never scored",
            )
        )
    docs = s.documents_per_request
    if docs is not None and docs < SMALL_REQUESTS * s.max_batch_size:
        out.append(
            Verdict(
                "small requests",
                f"{docs:.1f} documents per request against server.maxBatchSize {s.max_batch_size}",
                "each request fills a small part of a batch: send more documents per request, or "
                "lower spec.server.maxBatchSize so the model need not wait for batches",
            )
        )
    elif docs is not None and docs > 8 * s.max_batch_size:
        out.append(
            Verdict(
                "large requests",
                f"{docs:.1f} documents per request, {docs / s.max_batch_size:.1f} batches each",
                "requests are split into many forwards: raise spec.server.maxBatchSize and "
                "maxBatchTokens if GPU memory allows",
            )
        )
    return out


def render(s: Signals, verdicts: list[Verdict], name: str) -> str:
    head = (
        f"reranker {name}, {s.window_s:.0f}s from {s.source}: {s.requests_per_s:.2f} "
        f"requests/s, {s.documents_per_s:.1f} pairs/s, p95 {_s(s.latency_p95_s)}, queue p95 "
        f"{_s(s.queue_time_p95_s)}, model busy {_pct(s.inference_busy)}, tokenizing "
        f"{s.tokenization_busy:.2f} cores"
    )
    if s.requests_per_s + s.rejected_per_s < MIN_TRAFFIC:
        return head + "\nno traffic in the window: nothing to diagnose"
    if not verdicts:
        return (
            head
            + "\nno bottleneck: the queue is short, the model has headroom, batches are full and dense"
        )
    lines = [head]
    for v in verdicts:
        lines += [f"verdict: {v.name}", f"  {v.evidence}", f"  -> {v.remedy}"]
    return "\n".join(lines)
