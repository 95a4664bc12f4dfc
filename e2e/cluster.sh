#!/usr/bin/env bash
# The local e2e environment, without Docker: a real control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler) and kwok's fake GPU
# nodes started by `kwokctl --runtime binary` from the binaries that
# e2e/build-binaries.sh built, plus a real Prometheus (Debian's package)
# scraping the simulated vLLM fleet exporter.
#
#   e2e/cluster.sh up                    everything below, then print `env`
#   e2e/cluster.sh down                  stop everything, delete all state
#   e2e/cluster.sh env                   export lines for the tests (eval them)
#   e2e/cluster.sh status                what is running
#   e2e/cluster.sh cluster up|down       the control plane alone
#   e2e/cluster.sh nodes [COUNT]         (re)apply COUNT fake GPU nodes
#   e2e/cluster.sh chart                 (re)install CRDs and chart, operator kubeconfig
#   e2e/cluster.sh exporter start|stop   the fleet exporter alone
#   e2e/cluster.sh prometheus start|stop Prometheus alone (same port each time)
#   e2e/cluster.sh envoy-gateway start|stop  Envoy Gateway's controller alone
#
# Settings (environment):
#   FLEETSCALE_E2E_STATE      state dir (kubeconfig, logs, data)   [/tmp/fleetscale-e2e]
#   FLEETSCALE_E2E_CLUSTER    kwokctl cluster name                  [fleetscale-e2e]
#   FLEETSCALE_E2E_GPU_NODES  fake GPU nodes created by `up`        [2]
#   FLEETSCALE_E2E_GPUS_PER_NODE                                    [8]
#   FLEETSCALE_E2E_NODE_LABELS  extra node labels, comma-separated k=v
#   FLEETSCALE_E2E_BUILD      0 = fail instead of building missing binaries [1]
#   FLEETSCALE_E2E_PROMETHEUS_LISTEN  Prometheus listen address   [127.0.0.1]
#   FLEETSCALE_E2E_CONTROL_PLANE_QPS  client QPS (burst 2x) of the controller-manager
#                             and scheduler, set when the cluster is created [their defaults]
#   PYTHON                    Python with prometheus-client and kubernetes [python]
#   PROMETHEUS_BIN            [/usr/bin/prometheus]
#   HAPROXY_BIN               [/usr/sbin/haproxy] the gateway of the shed scenarios
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "${E2E_DIR}/versions.env"
STATE="${FLEETSCALE_E2E_STATE:-${TMPDIR:-/tmp}/fleetscale-e2e}"
CLUSTER="${FLEETSCALE_E2E_CLUSTER:-fleetscale-e2e}"
PYTHON="${PYTHON:-python}"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-/usr/bin/prometheus}"
HAPROXY_BIN="${HAPROXY_BIN:-/usr/sbin/haproxy}"
KUBECONFIG_PATH="${STATE}/kubeconfig"
LOGS="${STATE}/logs"
# kwokctl keeps each cluster's files (pki, component configs, pids) here.
export KWOK_WORKDIR="${STATE}/kwok"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

eval "$("${E2E_DIR}/build-binaries.sh" --print)"
# kwokctl looks kubectl up on PATH (and would download one otherwise).
export PATH="${KUBE_BIN_DIR}:${KWOK_BIN_DIR}:${HELM_BIN_DIR}:${PATH}"

ensure_binaries() {
  if "${E2E_DIR}/build-binaries.sh" --check 2>/dev/null; then return; fi
  [[ "${FLEETSCALE_E2E_BUILD:-1}" != "0" ]] || {
    "${E2E_DIR}/build-binaries.sh" --check || true
    die "binaries missing and FLEETSCALE_E2E_BUILD=0; run e2e/build-binaries.sh"
  }
  log "building missing binaries (cold machine: this takes a while)"
  "${E2E_DIR}/build-binaries.sh" >&2
}

free_port() {
  "${PYTHON}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ----------------------------------------------------------------- processes
# Each background process has STATE/<name>.pid; it is only ever signalled
# after checking that the pid still runs the expected command line.
pid_alive() { # name pattern
  local pidfile="${STATE}/$1.pid" pid
  [[ -f "${pidfile}" ]] || return 1
  pid="$(cat "${pidfile}")"
  [[ -n "${pid}" && -r "/proc/${pid}/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -q -- "$2"
}

stop_pid() { # name pattern
  local pidfile="${STATE}/$1.pid" pid
  if pid_alive "$1" "$2"; then
    pid="$(cat "${pidfile}")"
    log "stopping $1 (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      [[ -d "/proc/${pid}" ]] || break
      # a zombie of ours is gone for all purposes
      grep -q '^State:.*Z' "/proc/${pid}/status" 2>/dev/null && break
      sleep 0.1
    done
    if [[ -d "/proc/${pid}" ]] && ! grep -q '^State:.*Z' "/proc/${pid}/status" 2>/dev/null; then
      log "$1 did not stop in 10s: SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  fi
  rm -f "${pidfile}"
}

start_bg() { # name logfile cmd...
  local name="$1" logfile="$2"; shift 2
  mkdir -p "$(dirname "${logfile}")"
  setsid "$@" >>"${logfile}" 2>&1 </dev/null &
  echo $! >"${STATE}/${name}.pid"
}

wait_http() { # url timeout_s what
  local url="$1" timeout="$2" what="$3" start=${SECONDS}
  until curl -fsS -o /dev/null --max-time 2 "${url}" 2>/dev/null; do
    (( SECONDS - start < timeout )) || die "${what} not up after ${timeout}s (${url}); see ${LOGS}"
    sleep 0.5
  done
}

# ----------------------------------------------------------------- cluster
# Options that have no kwokctl flag: listen on loopback only, and never look
# for (or download) a kubectl other than ours.
kwokctl_config() {
  mkdir -p "${STATE}"
  cat >"${STATE}/kwokctl.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
  kubectlBinary: ${KUBE_BIN_DIR}/kubectl
EOF
  # Thousands of Deployments (the operator bench) wait minutes on the controllers' default
  # 20 requests a second; the bench raises it.
  local qps="${FLEETSCALE_E2E_CONTROL_PLANE_QPS:-}" component
  if [[ -n "${qps}" ]]; then
    [[ "${qps}" =~ ^[0-9]+$ ]] || die "FLEETSCALE_E2E_CONTROL_PLANE_QPS must be a whole number"
    echo "componentsPatches:" >>"${STATE}/kwokctl.yaml"
    for component in kube-controller-manager kube-scheduler; do
      printf -- '- name: %s\n  extraArgs:\n  - key: kube-api-qps\n    value: "%s"\n  - key: kube-api-burst\n    value: "%s"\n' \
        "${component}" "${qps}" "$((qps * 2))" >>"${STATE}/kwokctl.yaml"
    done
  fi
  echo "${STATE}/kwokctl.yaml"
}

# Writes are audited (who, which verb, on what, from which User-Agent), so tests can tell which
# operator replica wrote what: the HA scenarios check that only the leader ever writes.
audit_policy() {
  cat >"${STATE}/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: None
POLICY
  echo "${STATE}/audit-policy.yaml"
}

kwokctl_create_args() {
  printf '%s\n' \
    --config "$(kwokctl_config)" \
    create cluster \
    --name "${CLUSTER}" \
    --runtime binary \
    --kubeconfig "${KUBECONFIG_PATH}" \
    --etcd-binary "${ETCD_BIN_DIR}/etcd" \
    --kube-apiserver-binary "${KUBE_BIN_DIR}/kube-apiserver" \
    --kube-controller-manager-binary "${KUBE_BIN_DIR}/kube-controller-manager" \
    --kube-scheduler-binary "${KUBE_BIN_DIR}/kube-scheduler" \
    --kwok-controller-binary "${KWOK_BIN_DIR}/kwok" \
    --kube-authorization=true \
    --kube-admission=true \
    --kube-audit-policy "$(audit_policy)" \
    --quiet-pull \
    --wait 3m
}

# Everything must come from the local cache: refuse to start if kwokctl would
# download anything (a missing flag, a new kwokctl default, a missing kubectl).
check_no_download() {
  local args=() out
  mapfile -t args < <(kwokctl_create_args)
  out="$(kwokctl "${args[@]}" --dry-run 2>&1)" || die "kwokctl --dry-run failed: ${out}"
  printf '%s\n' "${out}" >"${LOGS}/kwokctl-dry-run.txt"
  # kwokctl announces every binary it fetches as "# Download SRC to DEST"; a
  # local SRC is only symlinked. Anything else is a download.
  local fetches bad
  fetches="$(grep -E '^# Download ' <<<"${out}" || true)"
  bad="$(grep -Ev "^# Download (${KUBE_BIN_DIR}|${ETCD_BIN_DIR}|${KWOK_BIN_DIR})/[^ ]+ to " <<<"${fetches}" || true)"
  if [[ -n "${bad}" ]] || grep -Eq 'https?://' <<<"${fetches}"; then
    die "kwokctl would download something (full plan: ${LOGS}/kwokctl-dry-run.txt):"$'\n'"${bad}"$'\n'"every binary must come from e2e/build-binaries.sh"
  fi
  [[ "$(wc -l <<<"${fetches}")" -ge 5 ]] \
    || die "kwokctl's plan names fewer binaries than expected; see ${LOGS}/kwokctl-dry-run.txt"
}

cluster_up() {
  ensure_binaries
  mkdir -p "${STATE}" "${LOGS}"
  command -v curl >/dev/null || die "curl is required"
  if kwokctl get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
    log "cluster ${CLUSTER} exists; starting it if stopped"
    kwokctl start cluster --name "${CLUSTER}" >&2 || true
  else
    check_no_download
    local args=() start=${SECONDS}
    mapfile -t args < <(kwokctl_create_args)
    log "creating cluster ${CLUSTER} (kwokctl --runtime binary)"
    kwokctl "${args[@]}" >"${LOGS}/kwokctl-create.log" 2>&1 || {
      tail -n 40 "${LOGS}/kwokctl-create.log" >&2
      die "kwokctl create cluster failed"
    }
    log "cluster created in $((SECONDS - start))s"
  fi
  wait_cluster_ready
}

kc() { kubectl --kubeconfig "${KUBECONFIG_PATH}" "$@"; }

wait_cluster_ready() {
  local start=${SECONDS}
  until kc get --raw /readyz >/dev/null 2>&1; do
    (( SECONDS - start < 120 )) || die "kube-apiserver not ready after 120s"
    sleep 1
  done
  # The controller-manager is up once it has created the default ServiceAccount.
  until kc -n default get serviceaccount default >/dev/null 2>&1; do
    (( SECONDS - start < 180 )) || die "kube-controller-manager did not create the default ServiceAccount"
    sleep 1
  done
  # The scheduler holds its leader lease once it runs.
  until kc -n kube-system get lease kube-scheduler >/dev/null 2>&1; do
    (( SECONDS - start < 180 )) || die "kube-scheduler did not take its lease"
    sleep 1
  done
  log "cluster ready: $(kc version -o json 2>/dev/null | "${PYTHON}" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
}

cluster_down() {
  local dir="${KWOK_WORKDIR}/clusters/${CLUSTER}" pids=() pid f
  if [[ -d "${dir}" ]]; then
    # The component pids kwokctl recorded, to check after it has deleted the cluster.
    for f in "${dir}"/pids/*.pid; do
      [[ -f "${f}" ]] && pids+=("$(cat "${f}")")
    done
    if [[ -n "${FLEETSCALE_E2E_ARTIFACTS:-}" ]]; then
      mkdir -p "${FLEETSCALE_E2E_ARTIFACTS}"
      kwokctl export logs --name "${CLUSTER}" "${FLEETSCALE_E2E_ARTIFACTS}/kwokctl" >/dev/null 2>&1 || true
    fi
    log "deleting cluster ${CLUSTER}"
    # kwokctl narrates a successful delete in JSON lines; show them only when it fails.
    local out
    out="$(kwokctl delete cluster --name "${CLUSTER}" 2>&1)" \
      || { printf '%s\n' "${out}" >&2; log "kwokctl delete cluster failed; checking for leftovers"; }
  fi
  # Nothing of this cluster may survive `down`: a recorded pid that still runs a
  # binary of this cluster's directory is killed.
  for pid in "${pids[@]}"; do
    [[ "${pid}" =~ ^[0-9]+$ && -r "/proc/${pid}/cmdline" ]] || continue
    if tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${dir}/"; then
      log "leftover process ${pid}: killing it"
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  done
}

nodes_apply() {
  local count="${1:-${FLEETSCALE_E2E_GPU_NODES:-2}}" labels=() kv
  IFS=',' read -r -a kvs <<<"${FLEETSCALE_E2E_NODE_LABELS:-}"
  for kv in "${kvs[@]}"; do [[ -n "${kv}" ]] && labels+=(--label "${kv}"); done
  "${PYTHON}" "${E2E_DIR}/gpu_nodes.py" --count "${count}" \
    --gpus "${FLEETSCALE_E2E_GPUS_PER_NODE:-8}" "${labels[@]}" | kc apply -f - >&2
  kc wait --for=condition=Ready node -l type=kwok --timeout=60s >&2
}

# ----------------------------------------------------------------- chart
# The chart brings the CRDs, the ServiceAccount and its RBAC. There is no real
# node to run its pod on (kwok's nodes are fake), so its Deployment is scaled
# to zero and the tests run `python -m fleetscale run` as a local process that
# authenticates as the chart's ServiceAccount: the RBAC under test is the
# chart's own.
CHART_RELEASE=fleetscale
CHART_NS="${FLEETSCALE_E2E_OPERATOR_NAMESPACE:-fleetscale-system}"

chart_install() {
  local chart="${E2E_DIR}/../charts/fleetscale"
  [[ -f "${chart}/Chart.yaml" ]] || die "no chart at ${chart}"
  gateway_crds_install
  log "installing CRDs and chart ${CHART_RELEASE} into ${CHART_NS}"
  kc apply --server-side --force-conflicts -f "${E2E_DIR}/../crds/" >&2
  helm --kubeconfig "${KUBECONFIG_PATH}" upgrade --install "${CHART_RELEASE}" "${chart}" \
    --namespace "${CHART_NS}" --create-namespace \
    --set replicaCount=1 --set providers.kwok.enabled=true \
    --set gateways.envoyGateway.enabled=true >"${LOGS}/helm.log" 2>&1 \
    || { cat "${LOGS}/helm.log" >&2; die "helm install failed"; }
  local dep sa
  dep="$(kc -n "${CHART_NS}" get deploy -l app.kubernetes.io/instance="${CHART_RELEASE}" -o name | head -n1)"
  [[ -n "${dep}" ]] || die "the chart created no Deployment"
  kc -n "${CHART_NS}" scale "${dep}" --replicas=0 >&2
  sa="$(kc -n "${CHART_NS}" get "${dep}" -o jsonpath='{.spec.template.spec.serviceAccountName}')"
  [[ -n "${sa}" ]] || die "the chart's Deployment names no ServiceAccount"
  operator_kubeconfig "${CHART_NS}" "${sa}"
}

# Gateway API's CRDs (standard channel) and Envoy Gateway's, from their Go modules
# (e2e/build-binaries.sh gateway-crds): the API server validates every policy the operator
# writes against Envoy Gateway's own schema.
gateway_crds_install() {
  [[ -f "${GATEWAY_CRDS_DIR}/.complete" ]] || "${E2E_DIR}/build-binaries.sh" gateway-crds >&2
  log "installing Gateway API ${GATEWAY_API_VERSION} and Envoy Gateway ${ENVOY_GATEWAY_VERSION} CRDs"
  kc apply --server-side --force-conflicts -f "${GATEWAY_CRDS_DIR}/gateway-api/" \
    -f "${GATEWAY_CRDS_DIR}/envoy-gateway/" >"${LOGS}/gateway-crds.log" 2>&1 \
    || { cat "${LOGS}/gateway-crds.log" >&2; die "installing the gateway CRDs failed"; }
  kc wait --for=condition=Established --timeout=60s \
    crd/backendtrafficpolicies.gateway.envoyproxy.io crd/httproutes.gateway.networking.k8s.io >&2
}

# A kubeconfig that authenticates as the chart's ServiceAccount.
operator_kubeconfig() { # namespace serviceaccount
  local out="${STATE}/operator.kubeconfig" server ca token
  server="$(kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kc config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
  token="$(kc -n "$1" create token "$2" --duration=24h)"
  rm -f "${out}"
  kubectl --kubeconfig "${out}" config set-cluster e2e --server="${server}" \
    --certificate-authority="${ca}" --embed-certs=true >/dev/null
  kubectl --kubeconfig "${out}" config set-credentials "system:serviceaccount:$1:$2" \
    --token="${token}" >/dev/null
  kubectl --kubeconfig "${out}" config set-context e2e --cluster=e2e \
    --user="system:serviceaccount:$1:$2" >/dev/null
  kubectl --kubeconfig "${out}" config use-context e2e >/dev/null
  chmod 600 "${out}"
  log "operator kubeconfig (ServiceAccount $1/$2): ${out}"
}

# ----------------------------------------------------------------- exporter
exporter_start() {
  mkdir -p "${STATE}" "${LOGS}"
  if pid_alive exporter fleet_exporter.py; then log "exporter already running"; return; fi
  local port
  port="$(cat "${STATE}/exporter.port" 2>/dev/null || free_port)"
  "${PYTHON}" -c 'import kubernetes, prometheus_client' 2>/dev/null \
    || die "${PYTHON} lacks kubernetes/prometheus-client; use the project venv (PYTHON=.venv/bin/python)"
  rm -f "${STATE}/exporter.port.ready"
  KUBECONFIG="${KUBECONFIG_PATH}" start_bg exporter "${LOGS}/exporter.log" \
    "${PYTHON}" "${E2E_DIR}/fleet_exporter.py" --port "${port}" --port-file "${STATE}/exporter.port.ready"
  echo "${port}" >"${STATE}/exporter.port"
  wait_http "http://127.0.0.1:${port}/healthz" 30 "fleet exporter"
  log "fleet exporter on http://127.0.0.1:${port}"
}

exporter_stop() { stop_pid exporter fleet_exporter.py; }

# ----------------------------------------------------------------- prometheus
prometheus_config() {
  local exporter_port="$1"
  mkdir -p "${STATE}/prometheus/targets"
  cat >"${STATE}/prometheus/prometheus.yml" <<EOF
# Written by e2e/cluster.sh.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fleet
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:${exporter_port}"]
  # Tests add targets (e.g. the operator's /metrics) by dropping JSON files here.
  - job_name: e2e
    honor_labels: true
    file_sd_configs:
      - files: ["${STATE}/prometheus/targets/*.json"]
        refresh_interval: 1s
EOF
}

prometheus_start() {
  mkdir -p "${STATE}" "${LOGS}"
  if pid_alive prometheus "${STATE}/prometheus/prometheus.yml"; then log "prometheus already running"; return; fi
  [[ -x "${PROMETHEUS_BIN}" ]] || die "${PROMETHEUS_BIN} not found: apt-get install -y --no-install-recommends prometheus"
  [[ -f "${STATE}/exporter.port" ]] || die "start the exporter first"
  local port listen
  port="$(cat "${STATE}/prometheus.port" 2>/dev/null || free_port)"
  # A restart (the "Prometheus is down" scenario) keeps the first start's address.
  listen="${FLEETSCALE_E2E_PROMETHEUS_LISTEN:-$(cat "${STATE}/prometheus.listen" 2>/dev/null || echo 127.0.0.1)}"
  prometheus_config "$(cat "${STATE}/exporter.port")"
  start_bg prometheus "${LOGS}/prometheus.log" "${PROMETHEUS_BIN}" \
    --config.file="${STATE}/prometheus/prometheus.yml" \
    --storage.tsdb.path="${STATE}/prometheus/data" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="${listen}:${port}" \
    --web.enable-lifecycle \
    --log.level=warn
  echo "${port}" >"${STATE}/prometheus.port"
  echo "${listen}" >"${STATE}/prometheus.listen"
  wait_http "http://127.0.0.1:${port}/-/ready" 60 "prometheus"
  log "prometheus on http://127.0.0.1:${port}"
}

prometheus_stop() { stop_pid prometheus "${STATE}/prometheus/prometheus.yml"; }

# ----------------------------------------------------------------- envoy gateway
# Envoy Gateway's controller (built by e2e/build-binaries.sh envoy-gateway), run as a local
# process with the admin kubeconfig, as its chart runs it cluster-wide with its own RBAC. It
# reconciles GatewayClass envoy-gateway and writes the status of routes and policies (the shed
# scenario checks that it accepts fleetscale's BackendTrafficPolicy). Its Envoy proxies cannot
# run on kwok's fake nodes; only the control plane's status is tested.
#
# Out of a pod, the controller still loads its xDS TLS certificates from /certs/tls.crt,
# tls.key and ca.crt (fixed paths in v1.9.1 for the Kubernetes provider). `certgen --local`
# writes them under the state directory, and the controller runs in a mount namespace of its
# own (unshare) where that directory is bind-mounted on /certs; only an empty /certs directory
# is created on the host, as the mount point.
EG_NS=envoy-gateway-system
envoy_gateway_start() {
  mkdir -p "${STATE}/envoy-gateway" "${LOGS}"
  if pid_alive envoy-gateway "${STATE}/envoy-gateway/config.yaml"; then log "envoy-gateway already running"; return; fi
  local bin="${ENVOY_GATEWAY_BIN_DIR}/envoy-gateway" dir="${STATE}/envoy-gateway"
  [[ -x "${bin}" ]] || "${E2E_DIR}/build-binaries.sh" envoy-gateway >&2
  command -v unshare >/dev/null || die "unshare (util-linux) is required to run Envoy Gateway"
  kc get namespace "${EG_NS}" >/dev/null 2>&1 || kc create namespace "${EG_NS}" >&2
  "${bin}" certgen --local --config-home "${dir}" >"${LOGS}/envoy-gateway-certgen.log" 2>&1 \
    || { cat "${LOGS}/envoy-gateway-certgen.log" >&2; die "envoy-gateway certgen --local failed"; }
  # The proxies' certificates as Secrets, as the chart's certgen Job creates them.
  ENVOY_GATEWAY_NAMESPACE="${EG_NS}" KUBECONFIG="${KUBECONFIG_PATH}" "${bin}" certgen --disable-topology-injector \
    >>"${LOGS}/envoy-gateway-certgen.log" 2>&1 \
    || { cat "${LOGS}/envoy-gateway-certgen.log" >&2; die "envoy-gateway certgen failed"; }
  printf '%s\n' \
    'apiVersion: gateway.envoyproxy.io/v1alpha1' \
    'kind: EnvoyGateway' \
    'provider:' \
    '  type: Kubernetes' \
    'gateway:' \
    '  controllerName: gateway.envoyproxy.io/gatewayclass-controller' >"${dir}/config.yaml"
  mkdir -p /certs
  ENVOY_GATEWAY_NAMESPACE="${EG_NS}" KUBECONFIG="${KUBECONFIG_PATH}" start_bg envoy-gateway \
    "${LOGS}/envoy-gateway.log" unshare --mount --propagation private sh -c \
    'mount --bind "$0" /certs && exec "$1" server --config-path "$2"' \
    "${dir}/certs/envoy-gateway" "${bin}" "${dir}/config.yaml"
  printf '%s\n' \
    'apiVersion: gateway.networking.k8s.io/v1' \
    'kind: GatewayClass' \
    'metadata: {name: envoy-gateway}' \
    'spec: {controllerName: gateway.envoyproxy.io/gatewayclass-controller}' | kc apply -f - >&2
  local start=${SECONDS}
  until [[ "$(kc get gatewayclass envoy-gateway -o jsonpath='{.status.conditions[?(@.type=="Accepted")].status}' 2>/dev/null)" == True ]]; do
    pid_alive envoy-gateway "${dir}/config.yaml" || { tail -n 30 "${LOGS}/envoy-gateway.log" >&2; die "envoy-gateway exited"; }
    (( SECONDS - start < 90 )) || { tail -n 30 "${LOGS}/envoy-gateway.log" >&2; die "Envoy Gateway did not accept its GatewayClass in 90s"; }
    sleep 1
  done
  log "envoy gateway ${ENVOY_GATEWAY_VERSION} running; GatewayClass envoy-gateway accepted"
}

envoy_gateway_stop() { stop_pid envoy-gateway "${STATE}/envoy-gateway/config.yaml"; }

wait_first_scrape() {
  local url start=${SECONDS}
  url="http://127.0.0.1:$(cat "${STATE}/prometheus.port")"
  until curl -fsS --max-time 2 "${url}/api/v1/query?query=up%7Bjob%3D%22fleet%22%7D%3D%3D1" 2>/dev/null \
      | grep -q '"value"'; do
    (( SECONDS - start < 30 )) || die "prometheus has not scraped the fleet exporter after 30s"
    sleep 0.5
  done
}

# ----------------------------------------------------------------- env
env_lines() {
  [[ -f "${KUBECONFIG_PATH}" ]] || die "no cluster: run e2e/cluster.sh up"
  local eport pport
  eport="$(cat "${STATE}/exporter.port" 2>/dev/null || true)"
  pport="$(cat "${STATE}/prometheus.port" 2>/dev/null || true)"
  cat <<EOF
export KUBECONFIG=${KUBECONFIG_PATH}
export PATH=${KUBE_BIN_DIR}:${HELM_BIN_DIR}:\${PATH}
export FLEETSCALE_E2E_PROMETHEUS_URL=http://127.0.0.1:${pport}
export FLEETSCALE_E2E_EXPORTER_URL=http://127.0.0.1:${eport}
export FLEETSCALE_E2E_PROMETHEUS_STOP='${E2E_DIR}/cluster.sh prometheus stop'
export FLEETSCALE_E2E_PROMETHEUS_START='${E2E_DIR}/cluster.sh prometheus start'
export FLEETSCALE_E2E_PROMETHEUS_TARGETS_DIR=${STATE}/prometheus/targets
export FLEETSCALE_E2E_KUBECTL=${KUBE_BIN_DIR}/kubectl
export FLEETSCALE_E2E_HELM=${HELM_BIN_DIR}/helm
export FLEETSCALE_E2E_STATE=${STATE}
export FLEETSCALE_E2E_KUBE_VERSION=${KUBE_VERSION}
export FLEETSCALE_E2E_OPERATOR=${FLEETSCALE_E2E_OPERATOR:-process}
export FLEETSCALE_E2E_OPERATOR_KUBECONFIG=${STATE}/operator.kubeconfig
export FLEETSCALE_E2E_OPERATOR_NAMESPACE=${CHART_NS}
export FLEETSCALE_E2E_AUDIT_LOG=${KWOK_WORKDIR}/clusters/${CLUSTER}/logs/audit.log
export FLEETSCALE_E2E_HAPROXY=${HAPROXY_BIN}
export FLEETSCALE_E2E_ENVOY_GATEWAY=${ENVOY_GATEWAY_BIN_DIR}/envoy-gateway
export FLEETSCALE_E2E_GATEWAY_CRDS=${GATEWAY_CRDS_DIR}
EOF
}

status() {
  local n
  for n in exporter prometheus envoy-gateway; do
    if [[ -f "${STATE}/${n}.pid" ]] && [[ -d "/proc/$(cat "${STATE}/${n}.pid")" ]]; then
      echo "${n}: running (pid $(cat "${STATE}/${n}.pid"), port $(cat "${STATE}/${n}.port" 2>/dev/null))"
    else
      echo "${n}: stopped"
    fi
  done
  if [[ -f "${KUBECONFIG_PATH}" ]] && kc get --raw /readyz >/dev/null 2>&1; then
    echo "cluster ${CLUSTER}: ready (KUBECONFIG=${KUBECONFIG_PATH})"
    kc get nodes -o wide 2>/dev/null || true
  else
    echo "cluster ${CLUSTER}: not running"
  fi
}

up() {
  local start=${SECONDS}
  cluster_up
  nodes_apply
  chart_install
  exporter_start
  prometheus_start
  envoy_gateway_start
  wait_first_scrape
  env_lines >"${STATE}/env"
  log "up in $((SECONDS - start))s; env in ${STATE}/env"
  env_lines
}

down() {
  if [[ -n "${FLEETSCALE_E2E_ARTIFACTS:-}" && -d "${LOGS}" ]]; then
    mkdir -p "${FLEETSCALE_E2E_ARTIFACTS}"
    cp -r "${LOGS}" "${FLEETSCALE_E2E_ARTIFACTS}/" 2>/dev/null || true
  fi
  envoy_gateway_stop
  prometheus_stop
  exporter_stop
  # Operator containers (e2e/image-local.sh) that a test run left behind.
  "${E2E_DIR}/image-local.sh" clean-containers "fleetscale.io/e2e-state=${STATE}"
  cluster_down
  rm -rf "${STATE}"
  log "down: nothing left running, ${STATE} removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_lines ;;
  status) status ;;
  cluster)
    case "${2:-}" in
      up) cluster_up ;;
      down) cluster_down ;;
      *) die "usage: $0 cluster up|down" ;;
    esac ;;
  nodes) nodes_apply "${2:-}" ;;
  chart) chart_install ;;
  exporter)
    case "${2:-}" in
      start) exporter_start ;;
      stop) exporter_stop ;;
      *) die "usage: $0 exporter start|stop" ;;
    esac ;;
  envoy-gateway)
    case "${2:-}" in
      start) envoy_gateway_start ;;
      stop) envoy_gateway_stop ;;
      *) die "usage: $0 envoy-gateway start|stop" ;;
    esac ;;
  prometheus)
    case "${2:-}" in
      start) prometheus_start ;;
      stop) prometheus_stop ;;
      *) die "usage: $0 prometheus start|stop" ;;
    esac ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
