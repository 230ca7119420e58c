"""The server's runtime state: settings, the model loaded in the background, the engine, draining."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reranker_contract import served_model_name
from reranker_contract.score_check import CheckState
from reranker_server import metrics
from reranker_server.api.access import Access
from reranker_server.config import Settings
from reranker_server.contracts import ModelBackend, RerankEngine
from reranker_server.score_check import ScoreCheckOptions, ScoreCheckReport, run_score_check
from reranker_server.score_check.processor import processor_model

log = logging.getLogger("reranker_server")

Loader = Callable[[], ModelBackend]  # blocking


@dataclass
class ServerState:
    """Shared by all routes through `app.state.server`."""

    settings: Settings
    loader: Loader
    access: Access  # built from the settings
    backend: ModelBackend | None = None
    engine: RerankEngine | None = None
    load_error: str | None = None
    draining: bool = False
    loaded: threading.Event = field(
        default_factory=threading.Event
    )  # set once loading ended (ok or not)
    on_load_failure: Callable[[BaseException], None] | None = None
    score_options: ScoreCheckOptions = field(default_factory=ScoreCheckOptions)
    score_check: ScoreCheckReport = field(init=False)
    _task: asyncio.Task | None = None

    def __post_init__(self) -> None:
        state = CheckState.PENDING if self.score_options.enabled else CheckState.DISABLED
        self.score_check = ScoreCheckReport(state=state, identity=self.identity)

    @property
    def identity(self) -> dict[str, str | None]:
        """The model and revision this pod serves (what parity's record must match)."""
        return {"model": self.settings.model, "revision": self.settings.revision}

    @property
    def model_loaded(self) -> bool:
        return self.engine is not None

    @property
    def ready(self) -> bool:
        """Loaded, the score check passed (or off), not draining."""
        return self.model_loaded and self.score_check.lets_ready and not self.draining

    @property
    def served_name(self) -> str:
        if self.backend is not None:
            return self.backend.model_name
        return served_model_name(self.settings.model or "unknown", self.settings.served_model_name)

    def start_loading(self) -> None:
        """Load the model off the event loop; the server answers probes meanwhile."""
        self._task = asyncio.get_running_loop().create_task(self._load(), name="reranker-load")

    async def _load(self) -> None:
        from reranker_server.engine import build_engine

        try:
            backend = await asyncio.to_thread(self.loader)
            relay = getattr(backend, "engine_metrics", None)  # the front of vLLM
            if relay is not None:
                metrics.ENGINE_METRICS.attach(*relay)
            engine = build_engine(backend, self.settings.engine_config())
            await engine.start()
            if self.settings.warmup:
                started = time.perf_counter()
                docs = await engine.warm_up()
                log.info("warm-up: %d documents in %.2fs", docs, time.perf_counter() - started)
            if self.score_options.enabled:
                await self._check_scores(backend, engine)
            self.backend, self.engine = backend, engine
            metrics.DEVICE_MEMORY.device = backend.device
            # the labelled latency series exists (at 0) before the first request, so a rate
            # over it starts from zero rather than from the first scrape that saw it
            metrics.INFERENCE_DURATION.labels(model_name=backend.model_name)
            log.info(
                "model %s loaded (%s, %s, %s)",
                backend.model_name,
                backend.family,
                backend.device,
                backend.dtype,
            )
        except Exception as exc:  # noqa: BLE001 - any load failure is reported by /health; the CLI exits
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("model loading failed: %s", self.load_error)
            if self.on_load_failure is not None:
                self.on_load_failure(exc)
        finally:
            self.loaded.set()

    async def _check_scores(self, backend: ModelBackend, engine: RerankEngine) -> None:
        """Run the score check on the loaded engine; its report decides readiness."""
        s, options = self.settings, self.score_options
        setup = {
            "engine": options.engine,
            "image": options.image,
            "dtype": backend.dtype,
            "quantization": s.quantization,
            "attention": s.attn_implementation,
            "device": processor_model(getattr(backend, "device", None)),
        }
        try:
            report = await run_score_check(engine, options, identity=self.identity, setup=setup)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run keeps the pod not-ready
            report = ScoreCheckReport(
                state=CheckState.FAILED,
                identity=self.identity,
                setup=setup,
                failed="score-check",
                message=f"the score check could not run: {type(exc).__name__}: {exc}",
                checked_at=time.time(),
            )
        self.score_check = report
        metrics.SCORE_CHECK.report = report
        if report.state == CheckState.FAILED:
            log.error("score check failed (not ready): %s: %s", report.failed, report.message)
        else:
            log.info("score check passed in %.2fs", report.duration_seconds or 0.0)

    async def shutdown(self) -> None:
        """Stop loading (if still running) and the engine."""
        self.draining = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception) as exc:  # noqa: BLE001
                log.debug("loading task ended during shutdown: %r", exc)
        if self.engine is not None:
            await self.engine.stop()
