"""BatchingEngine: admission, cross-request micro-batching and shared-prefix scoring.

`rerank` tokenizes through the backend (worker thread), enqueues the request's pairs and awaits a
future. One scheduler task repeatedly asks the planner (`planner.plan_next_batch`) for the next
batch, which names the forward passes it will make, and hands it to the model worker threads
(`model_workers`, each with its own torch thread count); at most max(`max_inflight_batches`,
workers) batches are handed over at once, so workers run side by side and the next batch is
planned while the current ones run. Each request's future resolves when its last pair is scored.
A failing forward fails only the requests in that batch. The metrics of what ran (forwards,
tokens, padding, prefix reuse) come from the backend's report of each call, not from the plan.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from reranker_server.contracts import (
    BackendReport,
    EncodeBudget,
    ForwardCancelled,
    ForwardPass,
    ForwardStop,
    ModelBackend,
    QueueFullError,
    RerankError,
    RerankInput,
    RerankOutput,
    Scored,
    TooManyTokensError,
    stoppable_forwards,
)
from reranker_server.engine import bulk, metrics
from reranker_server.engine.config import (
    EngineConfig,
    available_cpus,
    on_cpu,
    resolve_overhead,
    resolve_workers,
)
from reranker_server.engine.planner import PendingRequest, PlannedBatch, plan_next_batch
from reranker_server.engine.score_cache import CachedScore, ScoreCache, score_key
from reranker_server.models.chunking import aggregate
from reranker_server.models.resource_errors import is_out_of_memory


class EngineStoppedError(RerankError):
    """The engine is stopped or stopping (HTTP 503)."""

    status_code = 503


class NonFiniteScoresError(RerankError):
    """The model produced NaN or infinite scores (HTTP 500; never returned as scores)."""

    status_code = 500


@dataclass(frozen=True)
class BatchRecord:
    """What one planned batch held and how it ran (passed to batch listeners after it ran)."""

    kind: str  # "prefix" | "full"
    request_ids: tuple[int, ...]  # per sequence, the engine's id of its request
    pair_indices: tuple[int, ...]  # per sequence, the pair index within its request
    prefix_keys: frozenset[Hashable]  # the prefix keys of the requests in the batch
    planned_forwards: tuple[tuple[int, ...], ...]  # positions of the sequences, per forward
    report: BackendReport | None  # None when the batch failed

    @property
    def forwards(self) -> tuple[ForwardPass, ...]:
        return self.report.forwards if self.report is not None else ()


def sigmoid(x: float) -> float:
    """Numerically stable logistic function."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


log = logging.getLogger(__name__)

# documents of the warm-up request on a CPU (>= 2: the prefix path and its first-use check run)
CPU_WARM_UP_DOCUMENTS = 4


@dataclass(frozen=True)
class _Done:
    """A request's scored documents: per document its raw score and tokens, and how many were
    truncated, chunked, and into how many windows."""

    raw_scores: list[float]
    tokens: list[int]
    truncated: int
    chunked: int = 0
    windows: int = 0

    @classmethod
    def of_windows(
        cls,
        raw: Sequence[float],
        costs: Sequence[int],
        windows: Sequence[int],
        how: str,
        truncated: int,
    ) -> _Done:
        """Per document from per pair: a document of `windows[i]` consecutive pairs scores
        their aggregate (`how`) and costs their tokens together."""
        scores, tokens, start = [], [], 0
        for count in windows:
            part = raw[start : start + count]
            scores.append(part[0] if count == 1 else aggregate(part, how))
            tokens.append(sum(costs[start : start + count]))
            start += count
        chunked = [count for count in windows if count > 1]
        return cls(scores, tokens, truncated, len(chunked), sum(chunked))


@dataclass(eq=False)
class _Job:
    """An admitted request waiting for its scores."""

    pending: PendingRequest
    future: asyncio.Future
    raw: list[float | None]
    remaining: int
    client: Hashable | None = None
    large: bool = False  # more tokens than one forward holds (`BatchingEngine.fair_order`)


class BatchingEngine:
    """Implements `RerankEngine` over one `ModelBackend`."""

    def __init__(self, backend: ModelBackend, config: EngineConfig | None = None) -> None:
        self.backend = backend
        self.config = config or EngineConfig()
        self._cache = (
            ScoreCache(self.config.score_cache_size) if self.config.score_cache_size else None
        )
        self._ids = itertools.count(1)
        self._queue: list[_Job] = []  # arrival order; jobs with pairs not yet dispatched
        # pairs dispatched per client since its backlog was last empty (fair_order)
        self._served: dict[Hashable | None, int] = {}
        self._jobs: dict[int, _Job] = {}  # rid -> every queued or running job
        # running batches: what stops each one, and the jobs waiting for it
        self._running: dict[ForwardStop, tuple[_Job, ...]] = {}
        self._small_seen_at = -math.inf  # when a request that is not large last arrived
        self._inflight_requests = 0
        self._listeners: list[Callable[[BatchRecord], None]] = []
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task | None = None
        self._batch_tasks: set[asyncio.Task] = set()
        self._model_pool: ThreadPoolExecutor | None = None
        self._encode_pool: ThreadPoolExecutor | None = None
        self._bulk_pool: ThreadPoolExecutor | None = None  # large requests' tokenization
        self._state = "new"  # new -> running -> stopped
        self._paused = False
        # forward threads and torch intra-op threads per thread (None: torch's own setting)
        device = str(getattr(backend, "device", "cpu"))
        self.model_workers, self.torch_threads = resolve_workers(
            self.config, device, available_cpus()
        )
        self.forward_overhead_tokens = resolve_overhead(self.config, device)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the scheduler task and the worker threads (idempotent)."""
        if self._state == "running":
            return
        if self._state == "stopped":
            raise EngineStoppedError("the engine was stopped and cannot restart")
        self._wake = asyncio.Event()
        workers, threads = self.model_workers, self.torch_threads
        self._slots = asyncio.Semaphore(max(self.config.max_inflight_batches, workers))
        self._model_pool = ThreadPoolExecutor(
            workers,
            thread_name_prefix="reranker-model",
            initializer=_set_torch_threads,
            initargs=(threads,),
        )
        self._encode_pool = ThreadPoolExecutor(
            self.config.encode_workers, thread_name_prefix="reranker-encode"
        )
        if self.config.bulk_tokenize_chars:
            self._bulk_pool = ThreadPoolExecutor(
                1,
                thread_name_prefix="reranker-encode-bulk",
                initializer=bulk.lower_this_thread_priority,
            )
        self._task = asyncio.create_task(self._schedule(), name="reranker-scheduler")
        self._state = "running"

    async def stop(self) -> None:
        """Stop scheduling; queued requests fail with EngineStoppedError, running batches finish."""
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        if self._batch_tasks:
            await asyncio.gather(*self._batch_tasks, return_exceptions=True)
        for job in list(self._jobs.values()):
            self._fail(job, EngineStoppedError("the engine stopped before this request was scored"))
        for pool in (self._model_pool, self._encode_pool, self._bulk_pool):
            if pool is not None:
                pool.shutdown(wait=True)

    # -- introspection -------------------------------------------------------------------------
    @property
    def prefix_enabled(self) -> bool:
        """Whether batches are grouped by prefix: configured, and still in force for the model."""
        return bool(self.config.prefix_cache and self.backend.prefix_cache_in_force)

    def add_batch_listener(self, callback: Callable[[BatchRecord], None]) -> None:
        """Call `callback(record)` (on the event loop) for every batch once it ran."""
        self._listeners.append(callback)

    @property
    def inflight_requests(self) -> int:
        """Admitted requests not yet answered."""
        return self._inflight_requests

    @property
    def pending_pairs(self) -> int:
        """Pairs queued and not yet handed to the model thread."""
        return sum(len(job.pending.pending) for job in self._queue)

    @property
    def queued_tokens(self) -> int:
        """Tokens (whole sequences) of the pairs queued and not yet handed to the model thread."""
        return sum(_tokens(job.pending, i) for job in self._queue for i in job.pending.pending)

    def pause(self) -> None:
        """Stop dispatching new batches (requests are still admitted and queued)."""
        self._paused = True

    def resume(self) -> None:
        """Dispatch again after `pause`."""
        self._paused = False
        if self._wake is not None:
            self._wake.set()

    async def warm_up(self) -> int:
        """One request before the server is ready: the first forwards (and the shortcuts'
        first-use checks) run now. On an accelerator it is sized at the batch budget, so the
        allocator reserves the memory the largest batch needs; a CPU reserves nothing, and there
        a few short documents do (the budget's request held a Qwen3-0.6B-shaped pod on 2 vCPUs
        for over 5 minutes before ready). Returns the documents scored."""
        cfg = self.config
        if on_cpu(self.backend.device):
            width, count = 32, min(CPU_WARM_UP_DOCUMENTS, cfg.max_batch_size)
        else:
            width = max(
                8, min(cfg.max_batch_tokens // cfg.max_batch_size, self.backend.max_length) - 64
            )
            count = cfg.max_batch_size
        doc = " ".join(["warm"] * max(1, width // 2))
        docs = [doc] * count
        if self._state == "new":
            await self.start()
        # the engine's own request: sized by the batch budget, not by what a client may send
        await self._rerank_admitted(
            RerankInput(query="warm up the model", documents=docs), bounded=False
        )
        return len(docs)

    # -- the request path ----------------------------------------------------------------------
    async def rerank(self, inp: RerankInput) -> RerankOutput:
        """Score one request (results in input order); QueueFullError when saturated."""
        if self._state == "new":
            await self.start()
        if self._state != "running":
            raise EngineStoppedError("the engine is stopped")
        if self._inflight_requests >= self.config.max_concurrent_requests:
            raise QueueFullError(
                f"{self._inflight_requests} requests in flight "
                f"(max_concurrent_requests={self.config.max_concurrent_requests}); retry later",
                retry_after_s=self.config.retry_after_s,
                limit="max_concurrent_requests",
            )
        self._inflight_requests += 1
        try:
            return await self._rerank_admitted(inp)
        finally:
            self._inflight_requests -= 1

    async def rerank_fresh(self, inp: RerankInput) -> RerankOutput:
        """Score one request through the scheduler like `rerank`, never from or into the score
        cache (the score check: a document scored again is really computed again)."""
        if self._state == "new":
            await self.start()
        if self._state != "running":
            raise EngineStoppedError("the engine is stopped")
        return await self._rerank_admitted(inp, bounded=False, cached=False)

    async def _rerank_admitted(
        self, inp: RerankInput, *, bounded: bool = True, cached: bool = True
    ) -> RerankOutput:
        inp = self._long_documents(inp)
        docs = list(inp.documents)
        n = len(docs)
        raw: list[float | None] = [None] * n
        tokens: list[int] = [0] * n
        keys: list[str] = []
        miss = list(range(n))
        cache = self._cache if cached else None
        if cache is not None:
            keys = [score_key(self.backend.model_name, inp, d) for d in docs]
            miss = []
            for i, key in enumerate(keys):
                hit = cache.get(key)
                if hit is None:
                    miss.append(i)
                else:
                    raw[i], tokens[i] = hit.raw_score, hit.prompt_tokens
            metrics.SCORE_CACHE_HITS.inc(n - len(miss))
            metrics.SCORE_CACHE_MISSES.inc(len(miss))
        done = _Done([], [], 0)
        if miss:
            sub = inp if len(miss) == n else replace(inp, documents=[docs[i] for i in miss])
            done = await self._score_documents(sub, miss, bounded=bounded)
            scores, costs = done.raw_scores, done.tokens
            for j, i in enumerate(miss):
                raw[i], tokens[i] = scores[j], costs[j]
                if cache is not None:
                    cache.put(keys[i], CachedScore(scores[j], costs[j]))
        final = [float(r) for r in raw]  # every slot is filled here
        return RerankOutput(
            raw_scores=final,
            scores=[sigmoid(r) for r in final],
            prompt_tokens=sum(tokens),
            truncated_documents=done.truncated,
            chunked_documents=done.chunked,
            chunk_windows=done.windows,
        )

    def _long_documents(self, inp: RerankInput) -> RerankInput:
        """The request with its long-document mode resolved (its own, else the engine's) and,
        when it chunks, the engine's chunking bounds for the backend's `encode`."""
        mode = inp.long_documents or self.config.long_documents
        chunking = self.config.chunking if mode == "chunk" else None
        return replace(inp, long_documents=mode, chunking=chunking)  # type: ignore[arg-type]

    async def _score_documents(
        self, sub: RerankInput, original_index: Sequence[int], *, bounded: bool = True
    ) -> _Done:
        """Encode `sub`, queue its pairs (within the token budgets when `bounded`), await them:
        per document its raw score (its windows' aggregate when chunked) and tokens."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        # tokens counted as they are produced: a request far over the bound stops early, and a
        # cancelled one (its client left) stops at the next chunk of documents
        budget = EncodeBudget(self.config.max_request_tokens if bounded else None)
        limit = self.config.bulk_tokenize_chars
        large = self._bulk_pool is not None and bulk.request_chars(sub) > limit
        pool = self._bulk_pool if large else self._encode_pool
        if pool is None:
            raise EngineStoppedError("the engine is not running")
        work = pool.submit(self.backend.encode, sub, budget)
        try:
            encoded = await asyncio.wrap_future(work)
        except RerankError as exc:
            if bounded and isinstance(exc, TooManyTokensError):
                self._charge_tokenized(sub, budget.spent)
            raise exc.renumbered(original_index) from None
        except asyncio.CancelledError:
            budget.cancel()
            if bounded:
                # what its client made us tokenize, the chunk the thread was in included:
                # charged (from that thread) once it stops at its next chunk
                work.add_done_callback(lambda _: self._charge_tokenized(sub, budget.spent))
            raise
        finally:
            metrics.TOKENIZATION_TIME.observe(time.perf_counter() - started)
        if self._state != "running":
            raise EngineStoppedError("the engine stopped while this request was being tokenized")
        n = len(encoded.pairs)
        windows = encoded.windows or [1] * len(sub.documents)
        if n != sum(windows) or len(windows) != len(sub.documents):
            raise RuntimeError(
                f"backend.encode returned {n} pairs in {len(windows)} documents' windows for "
                f"{len(sub.documents)} documents"
            )
        p = len(encoded.prefix_ids)
        costs = [p + len(pair.input_ids) for pair in encoded.pairs]
        tokens = sum(costs)
        cut = sum(1 for t in encoded.truncated if t)
        if n == 0:
            return _Done([], [], 0)
        if bounded:
            try:
                self._admit_tokens(tokens)
            except TooManyTokensError:
                self._charge_tokenized(sub, tokens)
                raise
            if sub.charge_tokens is not None:  # taken once nothing else refuses the request
                sub.charge_tokens(tokens)
        job = _Job(
            pending=PendingRequest(next(self._ids), encoded, list(range(n)), time.monotonic()),
            future=loop.create_future(),
            raw=[None] * n,
            remaining=n,
            client=sub.client,
            large=tokens > self.config.max_batch_tokens,
        )
        if not job.large:
            self._small_seen_at = time.monotonic()
        self._queue.append(job)
        self._jobs[job.pending.rid] = job
        metrics.QUEUE_DEPTH.inc(n)
        metrics.QUEUED_TOKENS.inc(tokens)
        assert self._wake is not None
        self._wake.set()
        try:
            scores = await job.future
        except asyncio.CancelledError:
            self._withdraw(job)
            raise
        return _Done.of_windows(scores, costs, windows, sub.chunk_aggregate, cut)

    @staticmethod
    def _charge_tokenized(sub: RerankInput, tokens: int) -> None:
        """Charge, without refusal, the tokens counted when a request's tokenizing stopped: its
        client left, or max_request_tokens refused it. Abandoning requests, or sending ones
        bound to be refused, must not make tokenizing free. (A full queue refuses nobody's
        fault: not charged.) Called from the tokenizing thread too: `TokenCharge` is
        thread-safe."""
        if sub.charge_tokens is not None and tokens > 0:
            sub.charge_tokens(tokens, refusable=False)

    def _admit_tokens(self, tokens: int) -> None:
        """Refuse a request's tokens beyond the per-request (413) or the queue's (429) budget."""
        cfg = self.config
        if tokens > cfg.max_request_tokens:
            raise TooManyTokensError(
                f"{tokens} tokens after truncation exceed max_request_tokens "
                f"{cfg.max_request_tokens}; send fewer or shorter documents (or max_tokens_per_doc)",
                tokens=tokens,
                limit=cfg.max_request_tokens,
            )
        queued = self.queued_tokens
        if queued and queued + tokens > cfg.max_queued_tokens:
            raise QueueFullError(
                f"{queued} tokens are queued and this request adds {tokens} "
                f"(max_queued_tokens={cfg.max_queued_tokens}); retry later",
                retry_after_s=self.config.retry_after_s,
                limit="max_queued_tokens",
            )

    def _withdraw(self, job: _Job) -> None:
        """Forget a request: its undispatched pairs leave the queue, late scores are ignored,
        and a running batch nobody else waits for stops at its next layer."""
        self._jobs.pop(job.pending.rid, None)
        if job in self._queue:
            self._queue.remove(job)
            metrics.QUEUE_DEPTH.dec(len(job.pending.pending))
            metrics.QUEUED_TOKENS.dec(sum(_tokens(job.pending, i) for i in job.pending.pending))
            job.pending.pending = []
        for stop, waiting in self._running.items():
            if job in waiting and all(j.pending.rid not in self._jobs for j in waiting):
                stop.stop()

    # -- the scheduler ---------------------------------------------------------------------------
    async def _schedule(self) -> None:
        assert self._wake is not None and self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                batch = None if self._paused else self._plan()
                while batch is None:
                    self._wake.clear()
                    await self._wake.wait()
                    batch = None if self._paused else self._plan()
                self._dispatch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never leave admitted requests hanging
                log.exception("scheduler error; failing the queued requests")
                for job in list(self._queue):
                    self._fail(job, exc)
                self._slots.release()

    def fair_order(self) -> list[_Job]:
        """The queue as the planner sees it: the jobs of the client served least since its
        backlog was last empty come first; within a client, large jobs (more tokens than one
        forward holds) that have waited less than `large_request_patience_s` after the others;
        arrival order between equals. One client's large or many requests do not make
        another's small one wait behind them all, nor one large request (which needs several
        forwards anyway) the small ones that come after it; a large job that has waited its
        patience is served in arrival order, so none starves."""
        served = self._served
        recent = time.monotonic() - self.config.large_request_patience_s

        def rank(job: _Job) -> tuple[int, bool]:
            yields = job.large and job.pending.enqueued_at > recent
            return served.get(job.client, 0), yields

        return sorted(self._queue, key=rank)

    def _small_arriving(self) -> bool:
        """Whether a request that is not large arrived within `large_request_patience_s`."""
        return time.monotonic() - self._small_seen_at <= self.config.large_request_patience_s

    def _large_slots_left(self, small_arriving: bool) -> bool:
        """Whether a batch of a large job may start: while small requests arrive, at most all
        model workers but one run them, so the next small request finds a worker that is not
        busy for long; with none lately, every worker may (large requests alone keep the
        pod's whole throughput)."""
        if not small_arriving:
            return True
        running = sum(any(job.large for job in jobs) for jobs in self._running.values())
        return running < max(1, self.model_workers - 1)

    def _plan(self) -> PlannedBatch | None:
        """The next batch in fair order; while small requests arrive, one holding a large
        job's pairs is cut to `large_slice_tokens`."""
        cfg = self.config
        jobs = self.fair_order()
        small_arriving = self._small_arriving()
        if not self._large_slots_left(small_arriving):
            jobs = [job for job in jobs if not job.large]
        batch = self._plan_within(jobs, cfg.max_batch_tokens)
        if (
            batch is not None
            and small_arriving
            and cfg.large_slice_tokens < cfg.max_batch_tokens
            and any(self._jobs[item.request.rid].large for item in batch.items)
        ):
            batch = self._plan_within(jobs, cfg.large_slice_tokens)
        return batch

    def _plan_within(self, jobs: list[_Job], max_batch_tokens: int) -> PlannedBatch | None:
        cfg = self.config
        return plan_next_batch(
            [job.pending for job in jobs],
            max_batch_size=cfg.max_batch_size,
            max_batch_tokens=max_batch_tokens,
            prefix_enabled=self.prefix_enabled,
            prefix_min_pairs=cfg.prefix_min_pairs,
            window=cfg.schedule_window,
            overhead_tokens=self.forward_overhead_tokens,
            packed_continuations=self._packs_continuations(),
            # a backend without padding (the front of vLLM) says so: arrival order is best
            unpadded=not getattr(self.backend, "pads_batches", True),
        )

    def _packs_continuations(self) -> bool:
        """Whether the backend runs prefix batches' continuations unpadded (its shortcut
        `packed_decoder` in force): then one forward per chunk is cheapest."""
        shortcuts = getattr(self.backend, "shortcuts", None)
        if shortcuts is None:
            return False
        return any(cut.name == "packed_decoder" and cut.in_force for cut in shortcuts())

    def _dispatch(self, batch: PlannedBatch) -> None:
        now = time.monotonic()
        taken: dict[int, set[int]] = {}
        for item in batch.items:
            taken.setdefault(id(item.request), set()).add(item.index)
            metrics.QUEUE_TIME.observe(now - item.request.enqueued_at)
        for job in self._queue:
            chosen = taken.get(id(job.pending))
            if chosen:
                job.pending.pending = [i for i in job.pending.pending if i not in chosen]
        self._queue = [job for job in self._queue if job.pending.pending]
        self._count_served(batch)
        metrics.QUEUE_DEPTH.dec(len(batch.items))
        metrics.QUEUED_TOKENS.dec(sum(_tokens(it.request, it.index) for it in batch.items))
        metrics.INFLIGHT_PAIRS.inc(len(batch.items))
        jobs = {it.request.rid: self._jobs[it.request.rid] for it in batch.items}
        stop = ForwardStop()
        self._running[stop] = tuple(jobs.values())
        task = asyncio.create_task(self._execute(batch, jobs, stop))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    def _count_served(self, batch: PlannedBatch) -> None:
        """Add the batch's pairs to their clients' service; forget clients with nothing queued
        (a client back after its backlog emptied starts level with newcomers)."""
        for item in batch.items:
            client = self._jobs[item.request.rid].client
            self._served[client] = self._served.get(client, 0) + 1
        waiting = {job.client for job in self._queue}
        for client in [c for c in self._served if c not in waiting]:
            del self._served[client]

    def _record(self, batch: PlannedBatch, scored: Scored | None) -> None:
        """Metrics from what the backend reports it ran, then the batch listeners."""
        report = scored.report if scored is not None else None
        if report is not None:
            for forward in report.forwards:
                metrics.FORWARD_PASSES.labels(path=forward.path).inc()
                metrics.BATCH_SIZE.observe(forward.sequences)
                metrics.BATCH_TOKENS.observe(forward.padded_tokens)
                if forward.padded_tokens:
                    metrics.PADDING_RATIO.observe(1 - forward.real_tokens / forward.padded_tokens)
                metrics.COMPUTED_TOKENS.inc(forward.real_tokens)
                metrics.MODEL_FLOPS.inc(forward.flops)
            if report.prefix_kv:
                metrics.PREFIX_REUSE.inc(len(batch.items))
                metrics.PREFIX_TOKENS_SAVED.inc(report.prefix_tokens_reused)
        record = BatchRecord(
            kind=batch.kind,
            request_ids=tuple(it.request.rid for it in batch.items),
            pair_indices=tuple(it.index for it in batch.items),
            prefix_keys=frozenset(it.request.encoded.prefix_key for it in batch.items),
            planned_forwards=tuple(tuple(f) for f in batch.forwards),
            report=report,
        )
        for listener in self._listeners:
            listener(record)

    async def _execute(self, batch: PlannedBatch, jobs: dict[int, _Job], stop: ForwardStop) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            try:
                scored = await loop.run_in_executor(
                    self._model_pool, self._stoppable_forward, batch, stop
                )
                if len(scored.raw_scores) != len(batch.items):
                    raise RuntimeError(
                        f"backend returned {len(scored.raw_scores)} scores for "
                        f"{len(batch.items)} pairs"
                    )
            except ForwardCancelled:
                # every request of the batch was cancelled: nobody is left to answer
                metrics.BATCHES_STOPPED.inc()
                self._record(batch, None)
                stopped = EngineStoppedError("the batch stopped: its requests were cancelled")
                for job in jobs.values():
                    self._fail(job, stopped)
                return
            except Exception as exc:  # noqa: BLE001 - the batch's requests get the error
                log.warning("batch of %d pairs failed: %r", len(batch.items), exc)
                self._record(batch, None)
                for job in jobs.values():
                    self._fail(job, exc)
                return
            metrics.INFERENCE_TIME.observe(time.perf_counter() - started)
            self._record(batch, scored)
            for item, score in zip(batch.items, scored.raw_scores):
                job = jobs[item.request.rid]
                if job.future.done():
                    continue
                job.raw[item.index] = float(score)
                job.remaining -= 1
                if job.remaining == 0:
                    self._jobs.pop(job.pending.rid, None)
                    job.future.set_result(job.raw)
        finally:
            if any(job.large for job in self._running.pop(stop, ())):
                assert self._wake is not None
                self._wake.set()  # a large job's waiting pairs may start now
            metrics.INFLIGHT_PAIRS.dec(len(batch.items))
            self._slots.release()

    def _stoppable_forward(self, batch: PlannedBatch, stop: ForwardStop) -> Scored:
        """`_forward` on the model thread, stopping between layers once `stop` is set."""
        with stoppable_forwards(stop):
            return self._forward(batch)

    def _forward(self, batch: PlannedBatch) -> Scored:
        """Run one batch on a model thread: exactly the forwards the planner planned. Out of
        memory, it is split in two and each half retried (down to single pairs); scores that
        are not finite fail the batch instead of being returned."""
        try:
            scored = self._run(batch)
        except Exception as exc:
            if not is_out_of_memory(exc) or len(batch.items) < 2:
                raise
            log.warning(
                "out of memory on a batch of %d pairs: retrying it in two halves", len(batch.items)
            )
            metrics.OOM_RETRIES.inc()
            _release_device_memory()
            return _joined([self._forward(half) for half in _halves(batch)])
        bad = [i for i, x in enumerate(scored.raw_scores) if not math.isfinite(x)]
        if bad:
            raise NonFiniteScoresError(
                f"the model produced non-finite scores (NaN or inf) for {len(bad)} of "
                f"{len(scored.raw_scores)} pairs in this batch; see the server log"
            )
        return scored

    def _run(self, batch: PlannedBatch) -> Scored:
        pairs = [it.request.encoded.pairs[it.index] for it in batch.items]
        if batch.kind == "prefix":
            return self.backend.score(batch.prefix_ids, pairs, batch.forwards)
        prefixes = [it.request.encoded.prefix_ids for it in batch.items]
        return self.backend.score_mixed(prefixes, pairs)

    def _fail(self, job: _Job, exc: BaseException) -> None:
        """Fail a request once; its undispatched pairs leave the queue."""
        self._withdraw(job)
        if not job.future.done():
            job.future.set_exception(exc)


def _set_torch_threads(threads: int | None) -> None:
    """Model worker initializer: this thread's torch intra-op thread count (None: unchanged)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _halves(batch: PlannedBatch) -> list[PlannedBatch]:
    """The batch's items in two halves, each keeping its share of the planned forwards."""
    cut = len(batch.items) // 2
    halves = []
    for lo, hi in ((0, cut), (cut, len(batch.items))):
        forwards = [[i - lo for i in f if lo <= i < hi] for f in batch.forwards]
        halves.append(replace(batch, items=batch.items[lo:hi], forwards=[f for f in forwards if f]))
    return halves


def _joined(parts: list[Scored]) -> Scored:
    """One result from the results of consecutive halves."""
    reports = [p.report for p in parts]
    return Scored(
        [x for p in parts for x in p.raw_scores],
        BackendReport(
            tuple(f for r in reports for f in r.forwards),
            prefix_kv=all(r.prefix_kv for r in reports),
            prefix_tokens_reused=sum(r.prefix_tokens_reused for r in reports),
            last_layer_shortcut=all(r.last_layer_shortcut for r in reports),
        ),
    )


def _release_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _tokens(request: PendingRequest, index: int) -> int:
    """The tokens pair `index` of `request` costs as a whole sequence (prefix + pair)."""
    return request.prefix_len + request.pair_len(index)
