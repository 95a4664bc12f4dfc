#!/usr/bin/env bash
# The e2e suite on kind, for machines with Docker (and CI runners that have it).
#
#   e2e/kind/run.sh [PYTEST_ARGS...]
#
# 1. builds the operator image from the repo's Dockerfile,
# 2. creates a kind cluster (e2e/kind/cluster.yaml) and loads the image,
# 3. installs kwok in the cluster and fake GPU nodes (e2e/gpu_nodes.py),
# 4. starts the fleet exporter and Prometheus on the host (e2e/cluster.sh),
#    Prometheus listening where the kind node can reach it,
# 5. installs the CRDs and the Helm chart (the operator runs in the cluster),
# 6. runs the same pytest suite as the local binary-runtime cluster,
# then deletes everything (FLEETSCALE_E2E_KEEP=1 keeps it for debugging).
#
# Needs: docker, kind, kubectl, helm, Python with the project's dependencies
# (PYTHON, default: python), Prometheus (PROMETHEUS_BIN, default /usr/bin/prometheus).
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "${E2E_DIR}/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../versions.env
source "${E2E_DIR}/versions.env"

export FLEETSCALE_E2E_STATE="${FLEETSCALE_E2E_STATE:-${TMPDIR:-/tmp}/fleetscale-e2e-kind}"
STATE="${FLEETSCALE_E2E_STATE}"
CLUSTER="${FLEETSCALE_E2E_CLUSTER:-fleetscale-e2e}"
IMAGE="${FLEETSCALE_E2E_IMAGE:-fleetscale:e2e}"
OPERATOR_NS="${FLEETSCALE_E2E_OPERATOR_NAMESPACE:-fleetscale-system}"
PYTHON="${PYTHON:-python}"
KIND="${KIND:-kind}"
KUBECONFIG_PATH="${STATE}/kubeconfig"
export PYTHON

log() { printf '[kind] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in docker "${KIND}" kubectl helm curl; do
  command -v "${tool}" >/dev/null || die "${tool} not found on PATH"
done
kc() { kubectl --kubeconfig "${KUBECONFIG_PATH}" "$@"; }

cleanup() {
  local rc=$?
  if [[ -n "${FLEETSCALE_E2E_ARTIFACTS:-}" ]]; then
    mkdir -p "${FLEETSCALE_E2E_ARTIFACTS}"
    kc -n "${OPERATOR_NS}" logs -l app.kubernetes.io/name=fleetscale --tail=-1 --prefix \
      >"${FLEETSCALE_E2E_ARTIFACTS}/operator.log" 2>&1 || true
    cp -r "${STATE}/logs" "${FLEETSCALE_E2E_ARTIFACTS}/" 2>/dev/null || true
    "${KIND}" export logs --name "${CLUSTER}" "${FLEETSCALE_E2E_ARTIFACTS}/kind" >/dev/null 2>&1 || true
  fi
  if [[ "${FLEETSCALE_E2E_KEEP:-0}" == 1 ]]; then
    log "kept: KUBECONFIG=${KUBECONFIG_PATH}; remove with: ${KIND} delete cluster --name ${CLUSTER}"
    return "${rc}"
  fi
  "${E2E_DIR}/cluster.sh" prometheus stop || true
  "${E2E_DIR}/cluster.sh" exporter stop || true
  "${KIND}" delete cluster --name "${CLUSTER}" >/dev/null 2>&1 || true
  rm -rf "${STATE}"
  return "${rc}"
}
trap cleanup EXIT

mkdir -p "${STATE}/logs"

log "building ${IMAGE}"
docker build -t "${IMAGE}" "${REPO}"

log "creating kind cluster ${CLUSTER}"
"${KIND}" delete cluster --name "${CLUSTER}" >/dev/null 2>&1 || true
"${KIND}" create cluster --name "${CLUSTER}" --config "${E2E_DIR}/kind/cluster.yaml" \
  --kubeconfig "${KUBECONFIG_PATH}" --wait 180s
"${KIND}" load docker-image "${IMAGE}" --name "${CLUSTER}"

log "installing kwok ${KWOK_VERSION} and fake GPU nodes"
KWOK_RELEASE="https://github.com/kubernetes-sigs/kwok/releases/download/${KWOK_VERSION}"
kc apply -f "${KWOK_RELEASE}/kwok.yaml"
kc apply -f "${KWOK_RELEASE}/stage-fast.yaml"
kc -n kube-system rollout status deployment/kwok-controller --timeout=180s
"${PYTHON}" "${E2E_DIR}/gpu_nodes.py" --count "${FLEETSCALE_E2E_GPU_NODES:-2}" \
  --gpus "${FLEETSCALE_E2E_GPUS_PER_NODE:-8}" | kc apply -f -
kc wait --for=condition=Ready node -l type=kwok --timeout=120s

# Prometheus runs on the host; the operator in the kind node reaches it through
# the gateway of the docker network "kind".
GATEWAY="$(docker network inspect kind \
  -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | tr ' ' '\n' \
  | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | head -n1)"
[[ -n "${GATEWAY}" ]] || die "no IPv4 gateway on the docker network kind"
log "starting the fleet exporter and Prometheus (reachable from kind at ${GATEWAY})"
"${E2E_DIR}/cluster.sh" exporter start
FLEETSCALE_E2E_PROMETHEUS_LISTEN=0.0.0.0 "${E2E_DIR}/cluster.sh" prometheus start
PROM_PORT="$(cat "${STATE}/prometheus.port")"

log "installing the CRDs and the chart"
kc apply --server-side -f "${REPO}/crds/"
helm --kubeconfig "${KUBECONFIG_PATH}" upgrade --install fleetscale "${REPO}/charts/fleetscale" \
  --namespace "${OPERATOR_NS}" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --set image.pullPolicy=Never \
  --set prometheus.url="http://${GATEWAY}:${PROM_PORT}" \
  --set providers.kwok.enabled=true \
  --wait --timeout 180s

eval "$("${E2E_DIR}/cluster.sh" env)"
# Those describe the local binary-runtime cluster, not kind.
unset FLEETSCALE_E2E_KUBE_VERSION FLEETSCALE_E2E_OPERATOR_KUBECONFIG
export KUBECONFIG="${KUBECONFIG_PATH}"
FLEETSCALE_E2E_KUBECTL="$(command -v kubectl)"
FLEETSCALE_E2E_HELM="$(command -v helm)"
export FLEETSCALE_E2E_KUBECTL FLEETSCALE_E2E_HELM
export FLEETSCALE_E2E_OPERATOR=helm
export FLEETSCALE_E2E_OPERATOR_NAMESPACE="${OPERATOR_NS}"

log "running the e2e suite"
cd "${REPO}"
# The operator runs in the cluster from the image built above; the checks of the image that
# e2e/image-local.sh builds without Docker belong to the local binary-runtime cluster.
"${PYTHON}" -m pytest e2e --ignore=e2e/test_e2e_local_image.py \
  --ignore=e2e/test_e2e_local_image_operator.py "$@"
