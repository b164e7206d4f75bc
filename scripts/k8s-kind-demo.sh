#!/usr/bin/env bash
# Deploys Quarry to a local kind (default) or k3d cluster and checks that it serves: builds the
# image with scripts/image.sh (the one CI tests), loads it into the cluster, creates the hostPath
# data directories on the node, runs the ETL once on a small generated orders.csv, waits for
# the server pods to be ready and queries them through a port-forward. For people with Docker
# and kind or k3d; not run in CI (no cluster there; CI tests the image and the pod contract in
# plain containers, scripts/container-test.sh). See k8s/README.md.
#
#   scripts/k8s-kind-demo.sh                 # kind cluster "quarry"
#   CLUSTER_TOOL=k3d scripts/k8s-kind-demo.sh
#   scripts/k8s-kind-demo.sh --delete        # remove the cluster
#
# Needs: docker, kubectl, kind or k3d, python3, curl; about 5 CPUs for the Docker VM (two 1-core
# server pods + a 2-core ETL Job, all with requests == limits, plus the control plane).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOL=${CLUSTER_TOOL:-kind}
CLUSTER=${CLUSTER_NAME:-quarry}
IMAGE=quarry:dev
ROWS=${ROWS:-10000}
PORT=${LOCAL_PORT:-18080}
NS=quarry

die() { echo "k8s-kind-demo: $*" >&2; exit 1; }
step() { echo "== $*"; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH"; }

case "$TOOL" in
  kind) NODE="${CLUSTER}-control-plane" ;;
  k3d) NODE="k3d-${CLUSTER}-server-0" ;;
  *) die "CLUSTER_TOOL must be kind or k3d, not '$TOOL'" ;;
esac
need docker; need kubectl; need "$TOOL"; need python3; need curl

if [ "${1:-}" = "--delete" ]; then
  if [ "$TOOL" = kind ]; then kind delete cluster --name "$CLUSTER"; else k3d cluster delete "$CLUSTER"; fi
  exit 0
fi

step "building $IMAGE"
IMAGE="$IMAGE" "$ROOT/scripts/image.sh"

step "cluster $CLUSTER ($TOOL)"
if [ "$TOOL" = kind ]; then
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
  kubectl config use-context "kind-$CLUSTER" >/dev/null
  kind load docker-image "$IMAGE" --name "$CLUSTER"
else
  k3d cluster list "$CLUSTER" >/dev/null 2>&1 || k3d cluster create "$CLUSTER" --wait
  kubectl config use-context "k3d-$CLUSTER" >/dev/null
  k3d image import "$IMAGE" --cluster "$CLUSTER"
fi

step "data directories on node $NODE (k8s/overlays/kind/persistentvolumes.yaml)"
docker exec "$NODE" mkdir -p /var/lib/quarry/data /var/lib/quarry/input
sample=$(mktemp)
trap 'rm -f "$sample"' EXIT
python3 - "$ROWS" >"$sample" <<'PY'
import random, sys
rows = int(sys.argv[1])
rng = random.Random(42)
print("o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate,o_comment")
for k in range(1, rows + 1):
    print(f"{k},{rng.randint(1, 1500)},{rng.choice('OFP')},{rng.uniform(900, 500000):.2f},"
          f"199{rng.randint(2, 8)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},\"order {k}, sample\"")
PY
docker cp "$sample" "$NODE:/var/lib/quarry/input/orders.csv"
# Pods run as uid 65532: the ETL writes the data directory, everyone reads the input.
docker exec "$NODE" sh -c 'chown -R 65532:65532 /var/lib/quarry && chmod 0755 /var/lib/quarry/data /var/lib/quarry/input && chmod 0644 /var/lib/quarry/input/orders.csv'

step "kubectl apply -k k8s/overlays/kind"
kubectl apply -k "$ROOT/k8s/overlays/kind"

step "ETL: one run from the CronJob's template"
job="quarry-etl-demo-$(date +%s)"
kubectl -n "$NS" create job "$job" --from=cronjob/quarry-etl
if ! kubectl -n "$NS" wait --for=condition=complete "job/$job" --timeout=600s; then
  kubectl -n "$NS" describe "job/$job" || true
  kubectl -n "$NS" logs "job/$job" --tail=50 || true
  die "ETL job $job did not complete"
fi
kubectl -n "$NS" logs "job/$job" --tail=5 || true

step "server rollout and readiness"
kubectl -n "$NS" rollout status deployment/quarry-server --timeout=600s
kubectl -n "$NS" wait --for=condition=Ready pod -l app.kubernetes.io/component=server --timeout=300s
kubectl -n "$NS" get pods -o wide

step "querying through kubectl port-forward on 127.0.0.1:$PORT"
kubectl -n "$NS" port-forward --address 127.0.0.1 service/quarry-server "$PORT:80" >/dev/null 2>&1 &
pf=$!
trap 'kill "$pf" 2>/dev/null || true; rm -f "$sample"' EXIT
base="http://127.0.0.1:$PORT"
# The demo token of k8s/overlays/kind/demo-tokens.toml.
auth="Authorization: Bearer quarry-kind-demo-token"
ok=""
# The servers poll the data directory (QUARRY_RELOAD_INTERVAL, 10 s): wait for the dataset.
for _ in $(seq 1 30); do
  if curl -fsS -H "$auth" "$base/v1/datasets/orders" >/dev/null 2>&1; then ok=1; break; fi
  sleep 2
done
[ -n "$ok" ] || { curl -sS "$base/healthz" || true; die "dataset orders not served"; }
curl -fsS "$base/healthz"; echo
curl -fsS -H "$auth" "$base/v1/datasets/orders"; echo
curl -fsS -H "$auth" "$base/v1/datasets/orders/rows/42"; echo
curl -fsS -H "$auth" "$base/v1/datasets/orders/rows?o_orderstatus=eq.F&limit=3"; echo
echo "k8s-kind-demo: ok. Remove with: CLUSTER_TOOL=$TOOL $0 --delete"
