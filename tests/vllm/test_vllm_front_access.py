"""Access control, clients and the playground through the front of a real vLLM (Qwen3 yes/no,
the score template rendered by the operator): the front started as the rendered container runs
it, from a spec with a rotating API-keys Secret, JWT (a JWKS ConfigMap), per-client rate limits
and the playground, the Secret's and ConfigMap's files written where the pod mounts them.

- JWT: a good token scores as vLLM's own /score; expired, foreign-key and wrong-scope tokens are
  refused (401, 401, 403);
- the keys file: a key added to the mounted Secret works without a restart, a removed one stops;
- per-client rate limits: a client over its minute's requests gets 429 naming the limit while
  another client scores on, and vLLM never sees the refused requests;
- LiteLLM's cohere provider gets vLLM's order and scores;
- the playground in Chromium ranks as vLLM's /score does.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from vllm_helpers import (
    DOCUMENTS,
    QUERY,
    qwen3_spec,
    rendered_front_server,
    rendered_vllm,
    resource,
)

from browser_helpers import chromium, csp_violations, fill, wait

SERVED = "qwen3-access"
ISSUER, AUDIENCE, SCOPE = "https://idp.example", "reranker", "rerank"
REQUESTS_PER_MINUTE = 4
SPEC: dict[str, Any] = {
    **qwen3_spec(SERVED),
    "server": {
        "playground": True,
        "auth": {
            "apiKeysSecret": {"name": "clients"},
            "jwt": {
                "jwks": {"configMapName": "idp"},
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "requiredScope": SCOPE,
            },
            "rateLimit": {"requestsPerMinute": REQUESTS_PER_MINUTE},
        },
    },
    # random weights: the relevance check cannot hold (reranker_server.score_check)
    "scoreCheck": {"builtins": {"relevance": False}},
}
CR = resource("qaccess", SPEC)
# each test scores as its own client: every client has a bucket of its own
KEYS = {client: f"{client}-key-0123" for client in ("search", "batch", "browser", "llm")}
TOLERANCE = 1e-6  # one engine's numbers, our sigmoid (float64) over its logit (float32)


def _b64(n: int) -> str:
    return (
        base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    )


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def vllm_url(vllm_qwen3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with rendered_vllm(CR, vllm_qwen3_path, tmp_path_factory.mktemp("vllm-access")) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("front-access")


@pytest.fixture(scope="module")
def front(
    vllm_url: str, vllm_qwen3_path: Path, keys_dir: Path, idp_key: rsa.RSAPrivateKey
) -> Iterator[str]:
    """The rendered front, with the keys Secret and the JWKS ConfigMap where it mounts them."""
    mounts = keys_dir / "mounts" / "etc" / "reranker"
    (mounts / "api-keys").mkdir(parents=True)
    for client, key in KEYS.items():
        (mounts / "api-keys" / client).write_text(key + "\n")
    pub = idp_key.public_key().public_numbers()
    (mounts / "jwks").mkdir()
    jwks = {"keys": [{"kty": "RSA", "kid": "k1", "n": _b64(pub.n), "e": _b64(pub.e)}]}
    (mounts / "jwks" / "jwks.json").write_text(json.dumps(jwks))
    with rendered_front_server(
        CR, vllm_qwen3_path, keys_dir, engine_url=vllm_url, secrets={}
    ) as server:
        yield server.base_url


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-search",
        "scope": SCOPE,
        "exp": int(time.time()) + 120,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def _rerank(url: str, credential: str | None, **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    body = {"model": SERVED, "query": QUERY, "documents": DOCUMENTS, **extra}
    return httpx.post(f"{url}/v1/rerank", json=body, headers=headers, timeout=120)


def _scores(answer: httpx.Response) -> list[float]:
    assert answer.status_code == 200, answer.text
    return [
        r["relevance_score"] for r in sorted(answer.json()["results"], key=lambda r: r["index"])
    ]


def _vllm(vllm_url: str) -> list[float]:
    body = {"model": SERVED, "queries": QUERY, "documents": DOCUMENTS}
    answer = httpx.post(f"{vllm_url}/score", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return [d["score"] for d in sorted(answer.json()["data"], key=lambda d: d["index"])]


def test_jwt_through_the_front(vllm_url: str, front: str, idp_key: rsa.RSAPrivateKey) -> None:
    mine = _scores(_rerank(front, _token(idp_key)))
    assert max(abs(a - b) for a, b in zip(mine, _vllm(vllm_url))) <= TOLERANCE
    expired = _rerank(front, _token(idp_key, exp=int(time.time()) - 300))
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "authorization: the token has expired"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _rerank(front, _token(stranger)).status_code == 401
    scope = _rerank(front, _token(idp_key, sub="svc-read", scope="read"))
    assert scope.status_code == 403 and scope.json()["error"]["type"] == "permission_error"
    assert _rerank(front, None).status_code == 401


def test_keys_rotate_without_a_restart(front: str, keys_dir: Path) -> None:
    secret = keys_dir / "mounts" / "etc" / "reranker" / "api-keys"
    assert _rerank(front, "rotated-key-0123").status_code == 401
    (secret / "rotated").write_text("rotated-key-0123\n")  # kubelet updates the mounted Secret
    deadline = time.monotonic() + 30
    while _rerank(front, "rotated-key-0123").status_code != 200:
        assert time.monotonic() < deadline, "the added key never worked"
        time.sleep(1.1)
    (secret / "rotated").unlink()
    while _rerank(front, "rotated-key-0123").status_code != 401:
        assert time.monotonic() < deadline, "the removed key kept working"
        time.sleep(1.1)


def test_a_client_over_its_limit_waits_while_another_scores(vllm_url: str, front: str) -> None:
    def vllm_pairs() -> float:
        text = httpx.get(f"{vllm_url}/metrics", timeout=30).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("vllm:request_success_total")
        )

    codes = [_rerank(front, KEYS["batch"]).status_code for _ in range(REQUESTS_PER_MINUTE)]
    assert codes == [200] * REQUESTS_PER_MINUTE
    before = vllm_pairs()
    over = _rerank(front, KEYS["batch"])
    assert over.status_code == 429, over.text
    assert over.json()["error"]["type"] == "rate_limit_error" and "retry-after" in over.headers
    assert vllm_pairs() == before  # refused in the front: vLLM never saw it
    assert _rerank(front, KEYS["search"]).status_code == 200  # another client scores on


def test_litellm_through_the_front(vllm_url: str, front: str) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    theirs = _vllm(vllm_url)
    order = sorted(range(len(DOCUMENTS)), key=lambda i: -theirs[i])
    answer = litellm.rerank(
        model=f"cohere/{SERVED}",
        query=QUERY,
        documents=DOCUMENTS,
        top_n=3,
        api_base=front,
        api_key=KEYS["llm"],
    )
    assert [r["index"] for r in answer.results] == order[:3]
    got = [r["relevance_score"] for r in answer.results]
    assert max(abs(a - theirs[i]) for a, i in zip(got, order)) <= TOLERANCE


def test_the_playground_through_the_front(vllm_url: str, front: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    theirs = _vllm(vllm_url)
    for browser in chromium():
        browser.get(f"{front}/playground")
        wait(browser, lambda d: d.find_element(By.ID, "model").text == SERVED)
        fill(browser, query=QUERY, passages=DOCUMENTS, key=KEYS["browser"])
        browser.find_element(By.ID, "submit").click()
        items = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
        shown = [
            (int(li.get_attribute("data-index")), float(li.get_attribute("data-score")))
            for li in items
        ]
        browser.save_screenshot(str(tmp_path / "playground-front.png"))
        assert csp_violations(browser) == []
    assert [i for i, _ in shown] == sorted(range(len(DOCUMENTS)), key=lambda i: -theirs[i])
    assert max(abs(s - theirs[i]) for i, s in shown) <= 1e-5  # the page rounds nothing coarser
