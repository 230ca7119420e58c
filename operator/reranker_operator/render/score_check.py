"""The score check in the server container (spec.scoreCheck; reranker_contract.score_check):
its env, and the mounts of the probes and of the operator's record.

One projected volume at PROBES_DIR holds every probe file: the rendered <name>-score-probes
ConfigMap's PROBES_KEY (the inline probes) and the user's probesConfigMap key as
USER_PROBES_FILE; SCORE_PROBES_FILE lists the files present, comma-separated. The record
ConfigMap <name>-score-record (written by the operator, never rendered) is mounted at RECORD_DIR,
optional: it does not exist until a revision was Ready. Light: no spec parsing, so the engines
import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reranker_contract.score_check import (
    PROBES_DIR,
    PROBES_KEY,
    RECORD_DIR,
    RECORD_KEY,
    ScoreCheckEnv,
)
from reranker_operator.render.containers import JsonObject
from reranker_operator.render.labels import (
    score_probes_config_map_name,
    score_record_config_map_name,
)

if TYPE_CHECKING:
    from reranker_operator.api.score_check import ScoreCheckSpec

PROBES_VOLUME = "score-probes"
RECORD_VOLUME = "score-record"
USER_PROBES_FILE = "configmap-probes.json"  # the user's probesConfigMap key, in PROBES_DIR
ON, OFF = "on", "off"


@dataclass(frozen=True)
class ScoreCheckWiring:
    """What the score check adds to the server container and its pod."""

    env: list[tuple[str, str]]
    mounts: list[JsonObject] = field(default_factory=list)
    volumes: list[JsonObject] = field(default_factory=list)


def _probe_sources(instance: str, check: ScoreCheckSpec) -> list[tuple[JsonObject, str]]:
    """(projected volume source, file in PROBES_DIR) of each probe file."""
    sources = []
    if check.probes:
        items = [{"key": PROBES_KEY, "path": PROBES_KEY}]
        name = score_probes_config_map_name(instance)
        sources.append(({"configMap": {"name": name, "items": items}}, PROBES_KEY))
    user = check.probes_config_map
    if user is not None:  # not optional: a missing probe set must not pass unnoticed
        items = [{"key": user.key, "path": USER_PROBES_FILE}]
        sources.append(({"configMap": {"name": user.name, "items": items}}, USER_PROBES_FILE))
    return sources


def score_check_wiring(instance: str, check: ScoreCheckSpec, *, image: str) -> ScoreCheckWiring:
    """The env, mounts and volumes of the check for the RerankerService `instance`, whose
    container runs `image` (the server knows which engine scores: ENGINE_URL or its own)."""
    if not check.enabled:
        return ScoreCheckWiring(env=[(ScoreCheckEnv.SCORE_CHECK, OFF)])
    env = [
        (ScoreCheckEnv.SCORE_CHECK, ON),
        (ScoreCheckEnv.SCORE_CHECK_BUILTINS, ",".join(check.builtins.enabled())),
        (ScoreCheckEnv.SERVER_IMAGE, image),
    ]
    mounts: list[JsonObject] = []
    volumes: list[JsonObject] = []
    sources = _probe_sources(instance, check)
    if sources:
        files = ",".join(f"{PROBES_DIR}/{file}" for _, file in sources)
        env.append((ScoreCheckEnv.SCORE_PROBES_FILE, files))
        mounts.append({"name": PROBES_VOLUME, "mountPath": PROBES_DIR, "readOnly": True})
        projected = {"sources": [source for source, _ in sources]}
        volumes.append({"name": PROBES_VOLUME, "projected": projected})
    parity = check.parity
    if parity.enabled:
        env.append((ScoreCheckEnv.SCORE_RECORD_FILE, f"{RECORD_DIR}/{RECORD_KEY}"))
        overrides = parity.tolerances.overrides()
        if overrides:
            env.append((ScoreCheckEnv.SCORE_PARITY_TOLERANCES, json.dumps(overrides)))
        mounts.append({"name": RECORD_VOLUME, "mountPath": RECORD_DIR, "readOnly": True})
        record = {
            "name": score_record_config_map_name(instance),
            "items": [{"key": RECORD_KEY, "path": RECORD_KEY}],
            "optional": True,  # absent until a revision was Ready
        }
        volumes.append({"name": RECORD_VOLUME, "configMap": record})
    return ScoreCheckWiring(env=env, mounts=mounts, volumes=volumes)
