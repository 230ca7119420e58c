"""The bundled server's container (engine: transformers): its settings as env, its ports,
probes and the auth mounts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reranker_contract import (
    API_KEYS_DIR,
    DEFAULTS,
    JWKS_DIR,
    LIVENESS_PATH,
    METRICS_PORT_NAME,
    MODEL_CACHE_PATH,
    PORT,
    PORT_NAME,
    READY_PATH,
    Env,
    served_model_name,
)
from reranker_contract.score_check import ScoringEngine
from reranker_operator.render.containers import (
    ContainerParams,
    JsonObject,
    ProbeParams,
    ServingContainer,
    base_mounts,
    bundled_image,
    merge_env,
    pre_stop,
    resources,
    user_env,
    user_env_from,
)
from reranker_operator.render.score_check import score_check_wiring

if TYPE_CHECKING:
    from reranker_operator.api.spec import RerankerServiceSpec

ENGINE_NAME = str(ScoringEngine.TRANSFORMERS)  # spec.engine's value for this engine
STARTUP_FAILURES = 60  # x 10 s: loading the model after the download


@dataclass(frozen=True)
class FrontOf:
    """The bundled server as the front of an engine process in the same pod: it scores through
    `url` and loads no weights (no GPU; the model cache read-only, for the tokenizer)."""

    url: str  # ENGINE_URL
    resources: JsonObject  # the front's own requests and limits
    startup_failures: int  # x 10 s: the front is ready once the engine is and its check passed


def server_container(
    instance: str, spec: RerankerServiceSpec, front_of: FrontOf | None = None
) -> ServingContainer:
    """The bundled server's container for the RerankerService `instance`, and the volumes only
    it needs; with `front_of`, as the front of that engine."""
    ports: list[JsonObject] = [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}]
    if spec.server.metrics_port is not None:
        ports.append(
            {
                "name": METRICS_PORT_NAME,
                "containerPort": spec.server.metrics_port,
                "protocol": "TCP",
            }
        )
    mounts: list[JsonObject] = base_mounts()
    volumes: list[JsonObject] = []
    if front_of is not None:  # the front reads the tokenizer files only
        mounts = [
            {**m, "readOnly": True} if m["mountPath"] == MODEL_CACHE_PATH else m for m in mounts
        ]
    auth = spec.server.auth
    if auth.api_keys_secret is not None:  # a directory, so updates arrive without a restart
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
        volumes.append({"name": "api-keys", "secret": {"secretName": auth.api_keys_secret.name}})
    if auth.jwt is not None:
        jwks = auth.jwt.jwks
        mounts.append({"name": "jwks", "mountPath": JWKS_DIR, "readOnly": True})
        source = (
            {"secret": {"secretName": jwks.secret_name}}
            if jwks.secret_name
            else {"configMap": {"name": jwks.config_map_name}}
        )
        volumes.append({"name": "jwks", **source})
    image = bundled_image(spec)
    check = score_check_wiring(instance, spec.score_check, image=image)
    mounts += check.mounts
    volumes += check.volumes
    env = server_env(spec) + [{"name": str(name), "value": value} for name, value in check.env]
    if front_of is not None:
        front_env = [(Env.DEVICE, "cpu"), (Env.ENGINE_URL, front_of.url)]
        env = merge_env(env, [{"name": str(name), "value": value} for name, value in front_env])
    container = ContainerParams(
        image=image,
        pull_policy=spec.image.pull_policy,
        command=None,
        args=None,
        ports=ports,
        env=user_env(spec, env),
        env_from=user_env_from(spec),
        resources=resources(spec, gpus=True) if front_of is None else front_of.resources,
        probes=ProbeParams(
            READY_PATH,
            LIVENESS_PATH,
            PORT_NAME,
            startup_failures=STARTUP_FAILURES if front_of is None else front_of.startup_failures,
        ),
        mounts=mounts,
        lifecycle=pre_stop(spec),
    )
    return ServingContainer(container, volumes)


def server_env(spec: RerankerServiceSpec) -> list[JsonObject]:
    """The bundled server's settings as container env (the user's `env` is merged later)."""
    m, s = spec.model, spec.server
    auth = s.auth
    values: list[tuple[Env, str]] = [
        (Env.MODEL_NAME, m.name),
        (Env.MODEL_REVISION, m.revision),
        (Env.SERVED_MODEL_NAME, served_model_name(m.name, m.served_name)),
        (Env.MODEL_FAMILY, m.family),
        (Env.DTYPE, m.dtype),
        (Env.QUANTIZATION, m.quantization),
        (Env.TRUST_REMOTE_CODE, "true" if m.trust_remote_code else "false"),
        (Env.DEVICE, "cuda" if spec.resources.on_gpu() else "cpu"),
        (Env.MAX_BATCH_TOKENS, str(s.max_batch_tokens)),
        (Env.BATCH_SIZE, str(s.max_batch_size)),
        (Env.MAX_CLIENT_BATCH_SIZE, str(s.max_client_batch_size)),
        (Env.MAX_CONCURRENT_REQUESTS, str(s.max_concurrent_requests)),
        (Env.MAX_REQUEST_BYTES, str(s.max_request_bytes)),
        (Env.MAX_REQUEST_TOKENS, str(s.max_request_tokens)),
        (Env.MAX_QUEUED_TOKENS, str(s.max_queued_tokens)),
        (Env.HEADER_TIMEOUT_SECONDS, str(s.header_timeout_seconds)),
        (Env.BODY_TIMEOUT_SECONDS, str(s.body_timeout_seconds)),
        (Env.AUTH_FAILURES_PER_MINUTE, str(auth.rate_limit.auth_failures_per_minute)),
        (Env.LOG_LEVEL, s.log_level),
        (Env.PORT, str(PORT)),
        (Env.HF_HOME, MODEL_CACHE_PATH),
        (Env.CACHE_DIR, MODEL_CACHE_PATH),  # where the init container downloaded
        (Env.HF_HUB_OFFLINE, "1"),
        (Env.PLAYGROUND, "true" if s.playground else "false"),
        (Env.DRAIN_SECONDS, str(spec.termination.drain_seconds)),
        (Env.REQUEST_TIMEOUT_SECONDS, str(s.request_timeout_seconds)),
    ]
    if m.max_length is not None:
        values.append((Env.MAX_SEQUENCE_LENGTH, str(m.max_length)))
    if m.attention_implementation is not None:
        values.append((Env.ATTN_IMPLEMENTATION, m.attention_implementation))
    if s.compile_kernels:
        values.append((Env.COMPILE_KERNELS, "true"))
    if s.score_cache.enabled:
        values.append((Env.SCORE_CACHE_SIZE, str(s.score_cache.entries())))
    if m.instruction is not None:
        values.append((Env.DEFAULT_INSTRUCTION, m.instruction))
    if s.metrics_port is not None:
        values.append((Env.METRICS_PORT, str(s.metrics_port)))
    # long documents: the server's defaults unless the resource changes them (renders unchanged)
    for name, value, default in (
        (Env.LONG_DOCUMENTS, s.long_documents, DEFAULTS.long_documents),
        (Env.CHUNK_OVERLAP_TOKENS, s.chunk_overlap_tokens, DEFAULTS.chunk_overlap_tokens),
        (Env.MAX_CHUNKS_PER_DOCUMENT, s.max_chunks_per_document, DEFAULTS.max_chunks_per_document),
    ):
        if value != default:
            values.append((name, str(value)))
    if auth.api_keys_secret is not None:
        values.append((Env.API_KEYS_FILE, API_KEYS_DIR))
    if auth.jwt is not None:
        jwt = auth.jwt
        values += [
            (Env.JWT_JWKS_FILE, f"{JWKS_DIR}/{jwt.jwks.key}"),
            (Env.JWT_ALGORITHMS, ",".join(jwt.algorithms)),
            (Env.JWT_LEEWAY_SECONDS, str(jwt.leeway_seconds)),
        ]
        values += [
            (name, value)
            for name, value in (
                (Env.JWT_ISSUER, jwt.issuer),
                (Env.JWT_AUDIENCE, jwt.audience),
                (Env.JWT_REQUIRED_SCOPE, jwt.required_scope),
            )
            if value is not None
        ]
    limits = auth.rate_limit
    if limits.requests_per_minute:
        values.append((Env.RATE_LIMIT_REQUESTS_PER_MINUTE, str(limits.requests_per_minute)))
    if limits.pairs_per_minute:
        values.append((Env.RATE_LIMIT_PAIRS_PER_MINUTE, str(limits.pairs_per_minute)))
    if limits.tokens_per_minute:
        values.append((Env.RATE_LIMIT_TOKENS_PER_MINUTE, str(limits.tokens_per_minute)))
    if limits.trusted_proxies:
        values.append((Env.TRUSTED_PROXIES, ",".join(limits.trusted_proxies)))
    env: list[JsonObject] = [{"name": str(name), "value": value} for name, value in values]
    if s.api_key_secret is not None:
        ref = {"name": s.api_key_secret.name, "key": s.api_key_secret.key}
        env.append({"name": str(Env.API_KEY), "valueFrom": {"secretKeyRef": ref}})
    return env
