"""The score check's options, read once from the server settings (bad values: ConfigError)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reranker_contract.score_check import BuiltinCheck, ScoreChange, ScoreCheckEnv, ScoringEngine
from reranker_server.config import ConfigError, Settings, flag_name
from reranker_server.score_check.checks import parse_tolerance_overrides


@dataclass(frozen=True)
class ScoreCheckOptions:
    """What the check runs, against what, and with which tolerances."""

    enabled: bool = True
    builtins: tuple[BuiltinCheck, ...] = tuple(BuiltinCheck)
    probes_files: tuple[str, ...] = ()  # SCORE_PROBES_FILE: a comma-separated list
    record_file: str | None = None
    tolerance_overrides: dict[ScoreChange, float] = field(default_factory=dict)
    image: str | None = None
    engine: ScoringEngine = ScoringEngine.TRANSFORMERS

    @classmethod
    def from_settings(cls, settings: Settings) -> ScoreCheckOptions:
        """The options of `settings`; ConfigError names the flag and variable of a bad value."""
        known = {c.value: c for c in BuiltinCheck}
        names = [n.strip().lower() for n in settings.score_check_builtins.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"{flag_name('score_check_builtins')} / {ScoreCheckEnv.SCORE_CHECK_BUILTINS}: "
                f"{unknown[0]!r} is not a built-in check ({', '.join(known)})"
            )
        try:
            overrides = parse_tolerance_overrides(settings.score_parity_tolerances)
        except ValueError as exc:
            raise ConfigError(
                f"{flag_name('score_parity_tolerances')} / "
                f"{ScoreCheckEnv.SCORE_PARITY_TOLERANCES}: {exc}"
            ) from None
        return cls(
            enabled=settings.score_check,
            builtins=tuple(c for c in BuiltinCheck if c.value in names),
            probes_files=tuple(
                p.strip() for p in (settings.score_probes_file or "").split(",") if p.strip()
            ),
            record_file=settings.score_record_file or None,
            tolerance_overrides=overrides,
            image=settings.server_image or None,
            # the front of a vLLM engine (ENGINE_URL) scores with it, else this server's own
            engine=ScoringEngine.VLLM if settings.engine_url else ScoringEngine.TRANSFORMERS,
        )
