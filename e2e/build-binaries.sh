#!/usr/bin/env bash
# Build the binaries of the local e2e control plane from their Go modules and
# cache them, keyed by version, so that only a cold machine pays for the build.
#
#   e2e/build-binaries.sh [COMPONENT...]          build what is missing (idempotent)
#   e2e/build-binaries.sh --print                  print the cache directories
#   e2e/build-binaries.sh --check [COMPONENT...]   exit 1 if anything is missing
# COMPONENT: kubernetes, etcd, kwok, helm, gateway-crds, envoy-gateway (default: all of them).
#
# Layout: ${FLEETSCALE_BIN_CACHE:-~/.cache/fleetscale/bin}/<component>-<version>/
#   kubernetes-vX.Y.Z/  kube-apiserver kube-controller-manager kube-scheduler kubectl
#   etcd-vX.Y.Z/        etcd
#   kwok-vX.Y.Z/        kwok kwokctl
#   helm-vX.Y.Z/        helm
#   gateway-crds-vX.Y.Z-vA.B.C/  gateway-api/*.yaml (standard channel), envoy-gateway/*.yaml
#   envoy-gateway-vX.Y.Z/ envoy-gateway
# Versions come from e2e/versions.env. Everything is fetched from the Go module
# proxy and built with CGO_ENABLED=0; nothing is downloaded at cluster run time.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "${E2E_DIR}/versions.env"

CACHE_ROOT="${FLEETSCALE_BIN_CACHE:-${HOME}/.cache/fleetscale/bin}"
KUBE_DIR="${CACHE_ROOT}/kubernetes-${KUBE_VERSION}"
ETCD_DIR="${CACHE_ROOT}/etcd-${ETCD_VERSION}"
KWOK_DIR="${CACHE_ROOT}/kwok-${KWOK_VERSION}"
HELM_DIR="${CACHE_ROOT}/helm-${HELM_VERSION}"
GATEWAY_CRDS_DIR="${CACHE_ROOT}/gateway-crds-${ENVOY_GATEWAY_VERSION}-${GATEWAY_API_VERSION}"
ENVOY_GATEWAY_DIR="${CACHE_ROOT}/envoy-gateway-${ENVOY_GATEWAY_VERSION}"

KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ETCD_BINS=(etcd)
KWOK_BINS=(kwok kwokctl)
HELM_BINS=(helm)
# Not binaries: the marker that the CRD files are complete.
GATEWAY_CRDS_BINS=(.complete)
ENVOY_GATEWAY_BINS=(envoy-gateway)

if [[ -x /usr/local/go/bin/go ]] && ! command -v go >/dev/null 2>&1; then
  export PATH="/usr/local/go/bin:${PATH}"
fi
export CGO_ENABLED=0
# Fail instead of silently fetching another Go toolchain; set GOTOOLCHAIN in the
# environment to allow one (e.g. GOTOOLCHAIN=go1.27.3).
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

log() { printf '[build-binaries] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_all() { # dir bin...
  local dir="$1"; shift
  local b
  for b in "$@"; do [[ -x "${dir}/${b}" || ( "${b}" == .complete && -f "${dir}/${b}" ) ]] || return 1; done
}

print_dirs() {
  echo "KUBE_BIN_DIR=${KUBE_DIR}"
  echo "ETCD_BIN_DIR=${ETCD_DIR}"
  echo "KWOK_BIN_DIR=${KWOK_DIR}"
  echo "HELM_BIN_DIR=${HELM_DIR}"
  echo "GATEWAY_CRDS_DIR=${GATEWAY_CRDS_DIR}"
  echo "ENVOY_GATEWAY_BIN_DIR=${ENVOY_GATEWAY_DIR}"
}

MODE=build
COMPONENTS=()
for arg in "$@"; do
  case "${arg}" in
    --print) print_dirs; exit 0 ;;
    --check) MODE=check ;;
    kubernetes|etcd|kwok|helm|gateway-crds|envoy-gateway) COMPONENTS+=("${arg}") ;;
    *) die "unknown argument: ${arg} (use --print, --check or kubernetes|etcd|kwok|helm|gateway-crds|envoy-gateway)" ;;
  esac
done
# Small ones first: they are useful (and fail fast) while kubernetes compiles.
[[ ${#COMPONENTS[@]} -gt 0 ]] || COMPONENTS=(gateway-crds kwok etcd helm kubernetes envoy-gateway)

component_dir() {
  case "$1" in
    kubernetes) echo "${KUBE_DIR}" ;; etcd) echo "${ETCD_DIR}" ;;
    kwok) echo "${KWOK_DIR}" ;; helm) echo "${HELM_DIR}" ;;
    gateway-crds) echo "${GATEWAY_CRDS_DIR}" ;; envoy-gateway) echo "${ENVOY_GATEWAY_DIR}" ;;
  esac
}
component_bins() {
  case "$1" in
    kubernetes) echo "${KUBE_BINS[*]}" ;; etcd) echo "${ETCD_BINS[*]}" ;;
    kwok) echo "${KWOK_BINS[*]}" ;; helm) echo "${HELM_BINS[*]}" ;;
    gateway-crds) echo "${GATEWAY_CRDS_BINS[*]}" ;;
    envoy-gateway) echo "${ENVOY_GATEWAY_BINS[*]}" ;;
  esac
}

if [[ "${MODE}" == check ]]; then
  ok=0
  for c in "${COMPONENTS[@]}"; do
    # shellcheck disable=SC2046
    have_all "$(component_dir "${c}")" $(component_bins "${c}") \
      || { log "missing: $(component_dir "${c}")"; ok=1; }
  done
  exit "${ok}"
fi

command -v go >/dev/null 2>&1 || die "go not found on PATH"
command -v python3 >/dev/null 2>&1 || die "python3 not found on PATH (used to read 'go mod download -json')"

# One build at a time per cache (a second caller waits, then finds the binaries).
mkdir -p "${CACHE_ROOT}"
if command -v flock >/dev/null 2>&1; then
  exec 9>"${CACHE_ROOT}/.lock"
  flock 9
fi

WORK_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/fleetscale-build.XXXXXX")"
trap 'rm -rf "${WORK_ROOT}"' EXIT

# mod_info MODULE@VERSION FIELD: one field of `go mod download -json`.
mod_info() {
  local json
  json="$(cd "${WORK_ROOT}" && go mod download -json "$1")" \
    || die "go mod download $1 failed: ${json}"
  python3 -c 'import json,sys; d=json.load(sys.stdin); e=d.get("Error");
if e: sys.exit("error: "+e)
print(d.get(sys.argv[1],""))' "$2" <<<"${json}"
}

# go_directive GOMOD_FILE: the `go` line of a go.mod.
go_directive() { awk '$1=="go"{print $2; exit}' "$1"; }

# new_wrapper NAME GO_VERSION: an empty module to build another module's commands in.
new_wrapper() {
  local dir="${WORK_ROOT}/$1"
  mkdir -p "${dir}"
  printf 'module fleetscale.local/e2e-build/%s\n\ngo %s\n' "$1" "$2" >"${dir}/go.mod"
  echo "${dir}"
}

# install_bins SRC_DIR DEST_DIR BIN...: move freshly built binaries into the
# cache atomically, so an interrupted build never leaves a half-written cache.
install_bins() {
  local src="$1" dest="$2"; shift 2
  local tmp="${dest}.tmp.$$" b
  rm -rf "${tmp}"; mkdir -p "${tmp}"
  for b in "$@"; do
    [[ -x "${src}/${b}" ]] || die "build produced no ${b}"
    cp "${src}/${b}" "${tmp}/${b}"
  done
  mkdir -p "${dest}"
  for b in "$@"; do mv -f "${tmp}/${b}" "${dest}/${b}"; done
  rmdir "${tmp}"
}

timed() { # label cmd...: run and report the wall time
  local label="$1"; shift
  local start=${SECONDS}
  "$@"
  local t=$((SECONDS - start))
  TIMINGS+=("${label}: ${t}s")
}

# ---------------------------------------------------------------------------
build_kubernetes() {
  local v="${KUBE_VERSION}"
  if have_all "${KUBE_DIR}" "${KUBE_BINS[@]}"; then log "kubernetes ${v}: cached"; return; fi
  log "kubernetes ${v}: building ${KUBE_BINS[*]} (slow on a cold machine)"
  [[ "${v}" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBE_VERSION must look like v1.N.M, got ${v}"
  local minor="${BASH_REMATCH[1]}" patch="${BASH_REMATCH[2]}"
  local staging="v0.${minor}.${patch}"

  local gomod modtime
  gomod="$(mod_info "k8s.io/kubernetes@${v}" GoMod)"
  modtime="$(cd "${WORK_ROOT}" && go list -m -f '{{if .Time}}{{.Time.Format "2006-01-02T15:04:05Z07:00"}}{{end}}' "k8s.io/kubernetes@${v}")"
  local dir
  dir="$(new_wrapper kubernetes "$(go_directive "${gomod}")")"

  # k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces them
  # with ./staging/src/...; replace directives of a dependency do not apply, so
  # map each of them to the published v0.N.M, generated from the served go.mod.
  local staged
  staged="$(awk '$2=="=>" && $3 ~ /^\.\/staging\/src\// {print $1}' "${gomod}" | sort -u)"
  [[ -n "${staged}" ]] || die "no staging replace directives found in ${gomod}"
  {
    echo
    echo "require k8s.io/kubernetes ${v}"
    echo
    echo "replace ("
    local m
    for m in ${staged}; do echo "	${m} => ${m} ${staging}"; done
    echo ")"
  } >>"${dir}/go.mod"
  log "kubernetes ${v}: $(wc -w <<<"${staged}") staging modules pinned to ${staging}"

  local date_iso
  date_iso="$(date -u -d "${modtime:-1970-01-01T00:00:00Z}" +%Y-%m-%dT%H:%M:%SZ)"
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=${v}"
    ld+=" -X ${pkg}.gitMajor=1"
    ld+=" -X ${pkg}.gitMinor=${minor}"
    ld+=" -X ${pkg}.gitTreeState=clean"
    ld+=" -X ${pkg}.buildDate=${date_iso}"
  done

  local pkgs=() b
  for b in "${KUBE_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${b}"); done
  mkdir -p "${dir}/out"
  (cd "${dir}" && go build -mod=mod -trimpath -ldflags "${ld}" -o out/ "${pkgs[@]}") \
    || die "kubernetes ${v}: go build failed"
  install_bins "${dir}/out" "${KUBE_DIR}" "${KUBE_BINS[@]}"
  "${KUBE_DIR}/kube-apiserver" --version >&2
}

build_etcd() {
  local v="${ETCD_VERSION}"
  if have_all "${ETCD_DIR}" "${ETCD_BINS[@]}"; then log "etcd ${v}: cached"; return; fi
  log "etcd ${v}: building"
  local gomod
  gomod="$(mod_info "go.etcd.io/etcd/server/v3@${v}" GoMod)"
  local dir
  dir="$(new_wrapper etcd "$(go_directive "${gomod}")")"
  # The etcd main package is the root of go.etcd.io/etcd/server/v3. Its sibling
  # modules are replaced by relative paths there, so require them explicitly.
  {
    echo
    echo "require ("
    local m
    for m in go.etcd.io/etcd/server/v3 go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 \
             go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
      echo "	${m} ${v}"
    done
    echo ")"
  } >>"${dir}/go.mod"
  local sha="${v}"
  mkdir -p "${dir}/out"
  (cd "${dir}" && go build -mod=mod -trimpath \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${sha}" \
      -o out/etcd go.etcd.io/etcd/server/v3) || die "etcd ${v}: go build failed"
  install_bins "${dir}/out" "${ETCD_DIR}" "${ETCD_BINS[@]}"
  "${ETCD_DIR}/etcd" --version >&2
}

build_kwok() {
  local v="${KWOK_VERSION}"
  if have_all "${KWOK_DIR}" "${KWOK_BINS[@]}"; then log "kwok ${v}: cached"; return; fi
  log "kwok ${v}: building"
  local dir="${WORK_ROOT}/kwok"
  mkdir -p "${dir}/out"
  # Same ldflags as kwok's hack/releases.sh. KubeVersion is set to the pinned
  # Kubernetes so kwokctl's default matches the binaries built above.
  local ld="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${v#v}"
  ld+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
  ld+=" -X sigs.k8s.io/kwok/pkg/consts.PreRelease=GA"
  (cd "${dir}" && GOBIN="${dir}/out" go install -trimpath -ldflags "${ld}" \
      "sigs.k8s.io/kwok/cmd/kwok@${v}" "sigs.k8s.io/kwok/cmd/kwokctl@${v}") \
    || die "kwok ${v}: go install failed"
  install_bins "${dir}/out" "${KWOK_DIR}" "${KWOK_BINS[@]}"
  "${KWOK_DIR}/kwokctl" --version >&2
}

build_helm() {
  local v="${HELM_VERSION}"
  if have_all "${HELM_DIR}" "${HELM_BINS[@]}"; then log "helm ${v}: cached"; return; fi
  log "helm ${v}: building"
  local dir="${WORK_ROOT}/helm"
  mkdir -p "${dir}/out"
  local major="${v%%.*}"   # v3
  local mod="helm.sh/helm/${major}"
  local ld="-s -w -X ${mod}/internal/version.version=${v}"
  ld+=" -X ${mod}/internal/version.gitTreeState=clean"
  (cd "${dir}" && GOBIN="${dir}/out" go install -trimpath -ldflags "${ld}" "${mod}/cmd/helm@${v}") \
    || die "helm ${v}: go install failed"
  install_bins "${dir}/out" "${HELM_DIR}" "${HELM_BINS[@]}"
  "${HELM_DIR}/helm" version --short >&2
}

# Gateway API's CRDs (standard channel) and Envoy Gateway's, copied from their Go modules as
# the proxy serves them. Envoy Gateway keeps its CRDs as Helm templates
# (charts/gateway-crds-helm/templates/generated/): the one `{{- if ... }}` line and the one
# `{{- end }}` line around each are dropped, nothing else is touched.
build_gateway_crds() {
  if have_all "${GATEWAY_CRDS_DIR}" "${GATEWAY_CRDS_BINS[@]}"; then
    log "gateway-crds ${ENVOY_GATEWAY_VERSION} ${GATEWAY_API_VERSION}: cached"; return
  fi
  log "gateway-crds: fetching github.com/envoyproxy/gateway@${ENVOY_GATEWAY_VERSION} and sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}"
  local eg gwapi tmp="${GATEWAY_CRDS_DIR}.tmp.$$" f
  eg="$(mod_info "github.com/envoyproxy/gateway@${ENVOY_GATEWAY_VERSION}" Dir)"
  gwapi="$(mod_info "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}" Dir)"
  [[ -d "${eg}/charts/gateway-crds-helm/templates/generated" ]] || die "no CRDs in ${eg}"
  [[ -d "${gwapi}/config/crd/standard" ]] || die "no CRDs in ${gwapi}"
  rm -rf "${tmp}"; mkdir -p "${tmp}/gateway-api" "${tmp}/envoy-gateway"
  for f in "${gwapi}"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    [[ "${f}" == *_vap_* ]] && continue   # a ValidatingAdmissionPolicy, not a CRD
    cp "${f}" "${tmp}/gateway-api/"
  done
  for f in "${eg}"/charts/gateway-crds-helm/templates/generated/*.yaml; do
    grep -v '^{{-' "${f}" >"${tmp}/envoy-gateway/$(basename "${f}")"
  done
  grep -q 'kind: BackendTrafficPolicy' "${tmp}/envoy-gateway/gateway.envoyproxy.io_backendtrafficpolicies.yaml"     || die "Envoy Gateway ${ENVOY_GATEWAY_VERSION} has no BackendTrafficPolicy CRD where expected"
  touch "${tmp}/.complete"
  rm -rf "${GATEWAY_CRDS_DIR}"; mv "${tmp}" "${GATEWAY_CRDS_DIR}"
  log "gateway-crds: $(ls "${GATEWAY_CRDS_DIR}/gateway-api" | wc -l) Gateway API and $(ls "${GATEWAY_CRDS_DIR}/envoy-gateway" | wc -l) Envoy Gateway CRDs"
}

# Envoy Gateway's controller (cmd/envoy-gateway); its go.mod has no replace directives, so
# `go install` builds it as the project's own build does.
build_envoy_gateway() {
  local v="${ENVOY_GATEWAY_VERSION}"
  if have_all "${ENVOY_GATEWAY_DIR}" "${ENVOY_GATEWAY_BINS[@]}"; then log "envoy-gateway ${v}: cached"; return; fi
  log "envoy-gateway ${v}: building"
  local dir="${WORK_ROOT}/envoy-gateway"
  mkdir -p "${dir}/out"
  (cd "${dir}" && GOBIN="${dir}/out" go install -trimpath -ldflags "-s -w"       "github.com/envoyproxy/gateway/cmd/envoy-gateway@${v}")     || die "envoy-gateway ${v}: go install failed"
  install_bins "${dir}/out" "${ENVOY_GATEWAY_DIR}" "${ENVOY_GATEWAY_BINS[@]}"
}

TIMINGS=()
TOTAL_START=${SECONDS}
log "go: $(go version); cache: ${CACHE_ROOT}"
for c in "${COMPONENTS[@]}"; do
  case "${c}" in
    kwok) timed "kwok ${KWOK_VERSION}" build_kwok ;;
    etcd) timed "etcd ${ETCD_VERSION}" build_etcd ;;
    helm) timed "helm ${HELM_VERSION}" build_helm ;;
    kubernetes) timed "kubernetes ${KUBE_VERSION}" build_kubernetes ;;
    gateway-crds) timed "gateway-crds ${ENVOY_GATEWAY_VERSION}" build_gateway_crds ;;
    envoy-gateway) timed "envoy-gateway ${ENVOY_GATEWAY_VERSION}" build_envoy_gateway ;;
  esac
done
log "timings:"
for t in "${TIMINGS[@]}"; do log "  ${t}"; done
log "  total: $((SECONDS - TOTAL_START))s"
print_dirs
