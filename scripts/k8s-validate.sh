#!/usr/bin/env bash
# Validates the Kubernetes manifests offline, on a fresh machine (CI calls it from .ci/run):
#   1. `kubectl kustomize` renders every variant (k8s/tests/render.py: overlays small, large,
#      kind, small + the request-rate component, and the one-off ETL Job);
#   2. yamllint (strict) on the kustomize sources and the rendered output (duplicate keys);
#   3. kubernetes-validate --strict against Kubernetes 1.30.0 and 1.33.0, failing on "Couldn't
#      find schema" too (a removed apiVersion is only a warning there);
#   4. the policy tests (pytest k8s/tests): Quarry's operating rules on the rendered manifests,
#      with mutations proving each rule can fail, and the HPA simulator's self-checks.
# Tools come from PyPI (k8s/tests/requirements.txt) into a venv cached under
# ${XDG_CACHE_HOME:-~/.cache}/quarry; kubectl (with kustomize >= 5) must be on PATH.
# Env: QUARRY_OPENAPI=FILE to test against another copy of server/openapi.json.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_VERSIONS=(1.30.0 1.33.0)
REQUIREMENTS="$ROOT/k8s/tests/requirements.txt"

die() { echo "k8s-validate: $*" >&2; exit 1; }
step() { echo "== k8s-validate: $*"; }

# --- kubectl --------------------------------------------------------------------------------
if ! command -v kubectl >/dev/null 2>&1; then
  die "kubectl not found on PATH. It ships with the project's machine image (package kubectl);
elsewhere install kubectl >= 1.27 (kustomize >= 5) from the Kubernetes release packages.
Debian's own kubernetes-client (1.20, kustomize v2) is too old for these kustomizations."
fi
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}//p')
case "$kustomize_version" in
  ""|[0-4].*) die "kubectl's kustomize is '${kustomize_version:-unknown}'; need >= 5 (kubectl >= 1.27)" ;;
esac

# --- Python tools from PyPI, in a venv keyed by the pinned requirements -----------------------
command -v python3 >/dev/null 2>&1 || die "python3 not found"
req_hash=$(sha256sum "$REQUIREMENTS" | cut -c1-12)
VENV="${QUARRY_K8S_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/quarry/k8s-venv-$req_hash}"
if [ ! -f "$VENV/.installed" ]; then
  step "installing $(grep -cv '^#' "$REQUIREMENTS") tools from PyPI into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$REQUIREMENTS" \
    || die "pip install -r $REQUIREMENTS failed"
  touch "$VENV/.installed"
fi
PY="$VENV/bin/python"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/quarry-k8s-validate.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# kubernetes-validate exits 0 when it has no schema for an apiVersion (removed or misspelt) and
# only warns: treat that text as a failure.
validate() {
  local log="$WORK/validate.log" rc=0 v args=()
  for v in "${K8S_VERSIONS[@]}"; do args+=(-k "$v"); done
  "$VENV/bin/kubernetes-validate" --strict --quiet "${args[@]}" "$@" >"$log" 2>&1 || rc=$?
  if grep -q "Couldn't find schema" "$log"; then rc=1; fi
  cat "$log"
  return "$rc"
}

# --- 1. render --------------------------------------------------------------------------------
step "rendering (kubectl kustomize, kustomize $kustomize_version)"
mapfile -t RENDERED < <("$PY" "$ROOT/k8s/tests/render.py" "$WORK/rendered")
[ "${#RENDERED[@]}" -gt 0 ] || die "nothing rendered"
printf '   %s\n' "${RENDERED[@]##*/}"

# --- 2. yamllint ------------------------------------------------------------------------------
step "yamllint (sources and rendered)"
"$VENV/bin/yamllint" --strict -c "$ROOT/k8s/.yamllint.yaml" "$ROOT/k8s" "${RENDERED[@]}" \
  || die "yamllint failed"

# --- 3. schemas -------------------------------------------------------------------------------
step "kubernetes-validate --strict against ${K8S_VERSIONS[*]}"
# The checker must be able to fail: a removed apiVersion and an unknown field are rejected.
printf 'apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: canary\nspec:\n  minAvailable: 1\n' \
  >"$WORK/canary-removed.yaml"
printf 'apiVersion: v1\nkind: Service\nmetadata:\n  name: canary\nspec:\n  sesionAffinity: None\n' \
  >"$WORK/canary-typo.yaml"
for canary in "$WORK"/canary-*.yaml; do
  if validate "$canary" >/dev/null; then die "schema check accepted ${canary##*/}: the validator is broken"; fi
done
validate "${RENDERED[@]}" "$ROOT/k8s/optional/shared-fs-pv.yaml" || die "schema validation failed"

# --- 4. policy tests --------------------------------------------------------------------------
step "policy tests (pytest k8s/tests)"
rc=0
(cd "$ROOT" && "$PY" -m pytest -q -p no:cacheprovider k8s/tests) || rc=$?
case "$rc" in
  0) ;;
  5) die "pytest collected no tests" ;;
  *) die "policy tests failed (pytest exit $rc)" ;;
esac
echo "k8s-validate: ok (${#RENDERED[@]} variants; yamllint; schemas ${K8S_VERSIONS[*]}; policy tests)"
