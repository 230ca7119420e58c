#!/usr/bin/env bash
# End-to-end on a real (kind) cluster: build both images, install deploy/, create a small CPU
# RerankerService, wait for Ready, call POST /v1/rerank through a port-forward, print the ranking.
# The cluster is deleted on exit (KEEP_CLUSTER=1 keeps it for debugging).
#
#   bash tests/e2e/kind-e2e.sh          # or: make e2e
#
# Needs a reachable Docker engine, kind and kubectl, and internet access from the cluster (the
# example's model, BAAI/bge-reranker-base, ~1.1 GB, is downloaded by the pod's init container).
# Without Docker or kind it prints "SKIP: needs a Docker engine and kind" and exits 0.
#
# Environment: KIND_CLUSTER_NAME (reranker-e2e), KEEP_CLUSTER (0), EXAMPLE
# (examples/bge-reranker-cpu.yaml), READY_TIMEOUT (1200s), LOCAL_PORT (18080),
# DOCKER / KIND / KUBECTL (the commands to use).
set -euo pipefail

DOCKER=${DOCKER:-docker}
KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-kubectl}

if ! command -v "$DOCKER" >/dev/null 2>&1 || ! command -v "$KIND" >/dev/null 2>&1 \
    || ! command -v "$KUBECTL" >/dev/null 2>&1 || ! "$DOCKER" info >/dev/null 2>&1; then
    echo "SKIP: needs a Docker engine and kind (and kubectl)"
    exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CLUSTER=${KIND_CLUSTER_NAME:-reranker-e2e}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
EXAMPLE=${EXAMPLE:-examples/bge-reranker-cpu.yaml}
READY_TIMEOUT=${READY_TIMEOUT:-1200s}
LOCAL_PORT=${LOCAL_PORT:-18080}
CONTEXT="kind-${CLUSTER}"
WORK=$(mktemp -d)
PORT_FORWARD_PID=""
NAMESPACE=""

log() { printf '\n=== %s\n' "$*"; }
k() { "$KUBECTL" --context "$CONTEXT" "$@"; }

cleanup() {
    local status=$?
    if [[ -n "$PORT_FORWARD_PID" ]]; then
        kill "$PORT_FORWARD_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 ]]; then
        log "FAILED (exit $status): cluster state"
        k get rerankerservices,deployments,pods,services -A -o wide 2>/dev/null || true
        k describe rerankerservices -A 2>/dev/null | tail -n 60 || true
        k -n reranker-system logs deploy/reranker-operator --tail=100 2>/dev/null || true
        if [[ -n "$NAMESPACE" ]]; then
            k -n "$NAMESPACE" get pods -l app.kubernetes.io/managed-by=reranker-operator -o name \
                2>/dev/null | while read -r pod; do
                    k -n "$NAMESPACE" logs "$pod" --all-containers --tail=50 2>/dev/null || true
                done
        fi
    fi
    rm -rf "$WORK"
    if [[ "$KEEP_CLUSTER" == "1" ]]; then
        log "keeping cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
    else
        log "deleting cluster $CLUSTER"
        "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    fi
    exit "$status"
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
"$KIND" create cluster --name "$CLUSTER" --wait 180s

log "building images"
"$DOCKER" build -f Dockerfile.operator -t reranker-operator:dev .
# The CPU build of torch: kind nodes have no GPU, and the image is a few GB smaller.
"$DOCKER" build -f Dockerfile.server --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
    -t reranker-server:dev .
"$KIND" load docker-image --name "$CLUSTER" reranker-operator:dev reranker-server:dev

log "installing the operator (deploy/overlays/kind)"
# One apply on the fresh cluster: the operator creates its ClusterKopfPeering itself.
k apply -k deploy/overlays/kind/
k -n reranker-system rollout status deployment/reranker-operator --timeout=300s

# The example, pointed at the local server image and shrunk to one replica that fits a laptop.
cp "$EXAMPLE" "$WORK/example.yaml"
cat >"$WORK/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [example.yaml]
patches:
  - target: {kind: RerankerService}
    patch: |-
      - {op: add, path: /spec/replicas, value: 1}
      - {op: add, path: /spec/image, value: {repository: reranker-server, tag: dev, pullPolicy: Never}}
      - {op: add, path: /spec/resources/requests, value: {cpu: 500m, memory: 1Gi}}
EOF
log "creating the RerankerService of $EXAMPLE"
k apply -k "$WORK"
# A fresh cluster holds exactly this one RerankerService.
NAMESPACE=$(k get rerankerservices -A -o jsonpath='{.items[0].metadata.namespace}')
NAME=$(k get rerankerservices -A -o jsonpath='{.items[0].metadata.name}')

log "waiting for Ready (model download + load, up to $READY_TIMEOUT)"
k -n "$NAMESPACE" wait "rerankerservice/$NAME" --for=condition=Ready --timeout="$READY_TIMEOUT"
k -n "$NAMESPACE" get "rerankerservice/$NAME" -o wide

log "port-forward service/$NAME -> localhost:$LOCAL_PORT"
k -n "$NAMESPACE" port-forward "service/$NAME" "$LOCAL_PORT:8080" >"$WORK/port-forward.log" 2>&1 &
PORT_FORWARD_PID=$!
for _ in $(seq 1 30); do
    if curl -fsS "http://127.0.0.1:$LOCAL_PORT/ready" >/dev/null 2>&1; then break; fi
    sleep 1
done

log "POST /v1/rerank"
QUERY="What is the capital of France?"
RESPONSE=$(curl -fsS "http://127.0.0.1:$LOCAL_PORT/v1/rerank" -H 'Content-Type: application/json' -d @- <<EOF
{"query": "$QUERY", "documents": [
  "Berlin is the capital of Germany.",
  "Paris is the capital and largest city of France.",
  "The Eiffel Tower was completed in 1889.",
  "Bananas are rich in potassium."]}
EOF
)
echo "$RESPONSE"

log "ranking for: $QUERY"
python3 - "$RESPONSE" <<'EOF'
import json
import sys

body = json.loads(sys.argv[1])
docs = [
    "Berlin is the capital of Germany.",
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower was completed in 1889.",
    "Bananas are rich in potassium.",
]
results = body["results"]
assert sorted(r["index"] for r in results) == list(range(len(docs))), results
scores = [r["relevance_score"] for r in results]
assert scores == sorted(scores, reverse=True), "results are not sorted by relevance"
for rank, r in enumerate(results, 1):
    print(f"{rank}. {r['relevance_score']:.4f}  {docs[r['index']]}")
if results[0]["index"] != 1:
    sys.exit("the Paris document should rank first")
EOF
log "PASS"
