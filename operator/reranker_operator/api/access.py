"""`spec.server.auth` and `spec.networkPolicy`: who may call the server, how often, and from
where."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reranker_contract import DEFAULTS, Env
from reranker_operator.api.base import SpecModel
from reranker_operator.api.cel_rules import Rule
from reranker_operator.api.constants import BUNDLED_SERVER, OPERATOR_NAMESPACE
from reranker_operator.api.fieldtypes import DNS1123_SUBDOMAIN, Labels

JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
CIDR = r"^[0-9a-fA-F.:]+(/[0-9]{1,3})?$"


class ApiKeysSecret(SpecModel):
    """A Secret of API keys, mounted as a directory the server re-reads when it changes: each
    data key is one client (its name in logs and metrics) holding one key, or several keys one
    per line. Add a key, roll clients over, then remove the old one: no restart."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Secret name in the same namespace.",
    )


class JwksSource(SpecModel):
    """Where the JWKS (the issuer's public keys) is mounted from."""

    secret_name: str | None = Field(
        None, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, description="A Secret."
    )
    config_map_name: str | None = Field(
        None, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, description="A ConfigMap."
    )
    key: str = Field(
        "jwks.json",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="The key holding the JWKS JSON.",
    )

    rules = (
        Rule(
            "has(self.secretName) != has(self.configMapName)",
            "set exactly one of secretName, configMapName",
            lambda j: (j.secret_name is None) != (j.config_map_name is None),
        ),
    )


class JwtSpec(SpecModel):
    """JWT bearer tokens the server verifies (PyJWT): signature by a key of the JWKS, an
    algorithm of the allow-list (asymmetric only), issuer, audience, exp and nbf."""

    jwks: JwksSource
    issuer: str | None = Field(None, min_length=1, max_length=1024, description="Required iss.")
    audience: str | None = Field(None, min_length=1, max_length=1024, description="Required aud.")
    algorithms: list[
        Annotated[JwtAlgorithm, Field(description="A JWS algorithm (asymmetric).")]
    ] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        min_length=1,
        max_length=10,
        description="Accepted algorithms; none and HMAC are never accepted.",
    )
    leeway_seconds: int = Field(30, ge=0, le=600, description="Clock skew allowed on exp/nbf.")
    required_scope: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        pattern=r"^[!#-\[\]-~]+$",
        description="A scope the token must carry to score (403 otherwise).",
    )


class RateLimitSpec(SpecModel):
    """Per-client token buckets: per API key, per token subject, else per client address."""

    requests_per_minute: int = Field(0, ge=0, le=10000000, description="0 = no limit.")
    pairs_per_minute: int = Field(
        0, ge=0, le=1000000000, description="(query, document) pairs per minute; 0 = no limit."
    )
    tokens_per_minute: int = Field(
        0,
        ge=0,
        le=10000000000,
        description="Tokens the model computes per minute (prompt tokens after truncation, "
        "counted once a request is tokenized): what bounds a client's work, which pairs do not "
        f"({Env.RATE_LIMIT_TOKENS_PER_MINUTE}); 0 = no limit.",
    )
    trusted_proxies: list[
        Annotated[str, Field(max_length=64, pattern=CIDR, description="An address or CIDR.")]
    ] = Field(
        default_factory=list,
        max_length=64,
        description="Proxies (an ingress controller's pod CIDR) whose X-Forwarded-For names "
        "the client of an anonymous request.",
    )
    auth_failures_per_minute: int = Field(
        DEFAULTS.auth_failures_per_minute,
        ge=0,
        le=1000000,
        description="Failed authentications (401) per minute per client address; past them "
        "the address gets 429 without its credentials being checked, so keys cannot be guessed "
        f"quickly ({Env.AUTH_FAILURES_PER_MINUTE}; 0 = no back-off; {BUNDLED_SERVER}). "
        "Behind an ingress, set trustedProxies: otherwise every client shares its address.",
    )


class AuthSpec(SpecModel):
    """Access control of the scoring routes; health, readiness and metrics stay open."""

    api_keys_secret: ApiKeysSecret | None = None
    jwt: JwtSpec | None = None
    rate_limit: RateLimitSpec = Field(default_factory=RateLimitSpec)


class PeerSelector(SpecModel):
    """Pods allowed to call the server: those matching podLabels in the namespaces matching
    namespaceLabels (each must name at least one label; an empty selector would match
    everything)."""

    namespace_labels: Labels | None = Field(
        None,
        description="Labels of the allowed namespaces (unset: the RerankerService's own).",
        min_length=1,
    )
    pod_labels: Labels | None = Field(
        None,
        description="Labels of the allowed pods (unset: every pod of those namespaces).",
        min_length=1,
    )

    rules = (
        Rule(
            "has(self.namespaceLabels) || has(self.podLabels)",
            "a peer needs namespaceLabels or podLabels",
            lambda p: p.namespace_labels is not None or p.pod_labels is not None,
        ),
    )


def _prometheus_namespace() -> dict[str, str]:
    return {"kubernetes.io/metadata.name": "monitoring"}


def _operator_namespace() -> dict[str, str]:
    return {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}


class NetworkPolicySpec(SpecModel):
    """A NetworkPolicy (networking.k8s.io/v1) on the server pods: ingress to the server port
    only from the listed peers (and the KEDA interceptor when scaling to zero, and the operator's
    pods, which read each pod's score check), to the metrics
    port from Prometheus's namespace; egress only to DNS and, while the model downloads, HTTPS
    outside the cluster's private ranges (none when the model is a path in the image). Enforced
    only where the cluster's network plugin implements NetworkPolicy."""

    enabled: bool = Field(True, description="Create the NetworkPolicy.")
    allow_from: list[PeerSelector] = Field(
        default_factory=list,
        max_length=32,
        description="Callers allowed in; empty: only pods of the RerankerService's namespace.",
    )
    prometheus_namespace_labels: Labels = Field(
        default_factory=_prometheus_namespace,
        description="Labels of the namespace Prometheus scrapes from.",
        min_length=1,
    )
    prometheus_pod_labels: Labels | None = Field(
        None,
        description="Labels of the Prometheus pods there (unset: any pod of that namespace).",
        min_length=1,
    )
    operator_namespace_labels: Labels = Field(
        default_factory=_operator_namespace,
        description="Labels of the namespace the operator runs in: its pods may reach the "
        "server port to read each pod's score check (GET /score-check).",
        min_length=1,
    )
    ingress_controller_namespace_labels: Labels | None = Field(
        None,
        description="Labels of the ingress controller's namespace, allowed in when "
        "spec.ingress is enabled (e.g. kubernetes.io/metadata.name: ingress-nginx).",
        min_length=1,
    )
    hub_egress: Literal["https", "none"] = Field(
        "https",
        description="https: the pods may reach port 443 outside the private ranges (the model "
        "hub); none: no egress but DNS.",
    )
