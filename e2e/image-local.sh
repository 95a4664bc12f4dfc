#!/usr/bin/env bash
# The operator image, built and run on a machine that can pull from no container
# registry and has no Docker engine. Everything comes from Debian's apt and PyPI:
#
#   1. mmdebstrap makes a Debian bookworm root filesystem with python3 (Debian's
#      Python 3.11 at /usr/bin/python3), python3-venv and ca-certificates;
#   2. buildah imports it as the base image (from scratch, add, commit);
#   3. buildah builds the project's Dockerfile on it (--build-arg PYTHON_IMAGE=<base>,
#      RUN steps in a chroot that uses the host's network to reach PyPI);
#   4. podman runs it with runc, hardened as the chart runs the pod: read-only root,
#      a 64 MiB tmpfs at /tmp (the chart's emptyDir), the image's own non-root user,
#      no capabilities, no privilege escalation; the host's network.
#
#   e2e/image-local.sh build       build what is missing (cached), print the reference
#   e2e/image-local.sh ref         print the reference for the current sources (exit 1 if
#                                  it is not built)
#   e2e/image-local.sh env         `build`, then export lines for the e2e suite
#                                  (FLEETSCALE_E2E_LOCAL_IMAGE, FLEETSCALE_E2E_LOCAL_IMAGE_TOOL)
#   e2e/image-local.sh run [PODMAN_RUN_OPTION...] [-- CMD...]
#                                  run $FLEETSCALE_E2E_LOCAL_IMAGE (default: `ref`) as described
#                                  in 4: the image's entrypoint unless CMD is given
#                                  (--entrypoint may be among the options)
#   e2e/image-local.sh podman ARG...   podman on the image store of this script
#   e2e/image-local.sh clean-containers LABEL=VALUE   remove the containers with that label
#
# Cache (${FLEETSCALE_IMAGE_CACHE:-~/.cache/fleetscale/image}):
#   base/rootfs-<key>.tar   the mmdebstrap tarball, keyed by its inputs and the ISO week
#                           (so that Debian's security updates come in weekly)
#   storage-<driver>/       buildah's and podman's image store
#   builds/<key>.log        what each build did and how long it took
# Images: localhost/fleetscale-base:<key> and localhost/fleetscale:local-<key>, the
# latter keyed by the base, the Dockerfile, .dockerignore, every file of the build
# context and buildah's version. A warm `build` only computes the key.
#
# Settings (environment):
#   FLEETSCALE_IMAGE_CACHE            cache directory            [~/.cache/fleetscale/image]
#   FLEETSCALE_IMAGE_STORAGE_DRIVER   overlay (kernel overlayfs) or vfs (plain copies;
#                                     slower, works on any file system)   [overlay]
#   FLEETSCALE_IMAGE_MIRROR           Debian mirror      [http://deb.debian.org/debian]
#   FLEETSCALE_IMAGE_SECURITY_MIRROR  Debian security mirror
#                                     [http://deb.debian.org/debian-security]
#   FLEETSCALE_IMAGE_BUILD=0          fail instead of building a missing image
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${E2E_DIR}/.." && pwd)"
CACHE="${FLEETSCALE_IMAGE_CACHE:-${HOME}/.cache/fleetscale/image}"
DRIVER="${FLEETSCALE_IMAGE_STORAGE_DRIVER:-overlay}"
MIRROR="${FLEETSCALE_IMAGE_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${FLEETSCALE_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
STORAGE="${CACHE}/storage-${DRIVER}"
# The store's run-time state (locks, mounts), one per store.
RUNROOT="${XDG_RUNTIME_DIR:-/run}/fleetscale-image-$(printf '%s' "${STORAGE}" | sha256sum | cut -c1-12)"

SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
# As Debian's own -slim images: no manual pages, documentation (but the copyright
# files) or translations.
BASE_DPKG_OPTS=(
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
)
# The chart's emptyDir for /tmp is 64 MiB; tests compare the two.
TMP_SIZE=64m

log() { printf '[image-local] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STORE=(--root "${STORAGE}" --runroot "${RUNROOT}" --storage-driver "${DRIVER}")
bah() { buildah "${STORE[@]}" "$@"; }
# runc, not Debian's default crun: crun refuses this machine's hybrid cgroup layout.
pod() {
  podman "${STORE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}

need_tools() {
  local t
  for t in "$@"; do
    command -v "${t}" >/dev/null 2>&1 || die "${t} not found: run e2e/install-deps.sh"
  done
}

sha() { sha256sum | cut -c1-16; }

base_sources() {
  printf '%s\n' \
    "deb ${MIRROR} ${SUITE} main" \
    "deb ${MIRROR} ${SUITE}-updates main" \
    "deb ${SECURITY_MIRROR} ${SUITE}-security main"
}

base_key() {
  {
    echo "suite=${SUITE} variant=apt include=${BASE_PACKAGES}"
    printf '%s\n' "${BASE_DPKG_OPTS[@]}"
    base_sources
    mmdebstrap --version
    date -u +%G-W%V
  } | sha
}

# Every file the Dockerfile may COPY (what .dockerignore lets through), by content.
context_digest() {
  (
    cd "${REPO}"
    {
      printf '%s\n' Dockerfile .dockerignore pyproject.toml uv.lock README.md
      find operator -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort
    } | while IFS= read -r f; do
      printf '%s %s\n' "$(sha256sum <"${f}" | cut -d' ' -f1)" "${f}"
    done
  ) | sha
}

image_key() { # base_key
  { echo "base=$1"; context_digest; buildah --version; } | sha
}

image_ref() { echo "localhost/fleetscale:local-$(image_key "$(base_key)")"; }

has_image() { bah inspect --type image "$1" >/dev/null 2>&1; }

build_base() { # key -> base image reference
  local key="$1" ref="localhost/fleetscale-base:$1" tar="${CACHE}/base/rootfs-$1.tar" start
  if has_image "${ref}"; then echo "${ref}"; return; fi
  mkdir -p "${CACHE}/base"
  if [[ ! -s "${tar}" ]]; then
    start=${SECONDS}
    log "mmdebstrap: ${SUITE} with ${BASE_PACKAGES} -> ${tar}"
    # Sources are given explicitly: without them mmdebstrap reads them from a
    # standard input that is not a terminal.
    local sources=()
    mapfile -t sources < <(base_sources)
    rm -rf "${tar%.tar}.part.tar"
    mmdebstrap --variant=apt --format=tar --include="${BASE_PACKAGES}" "${BASE_DPKG_OPTS[@]}" \
      "${SUITE}" "${tar%.tar}.part.tar" "${sources[@]}" </dev/null >"${LOG_FILE}.mmdebstrap" 2>&1 \
      || { tail -n 30 "${LOG_FILE}.mmdebstrap" >&2; die "mmdebstrap failed"; }
    mv "${tar%.tar}.part.tar" "${tar}"
    echo "base rootfs (mmdebstrap): $((SECONDS - start)) s, $(du -m "${tar}" | cut -f1) MB" >>"${LOG_FILE}"
  fi
  start=${SECONDS}
  local ctr="fleetscale-base-import-$$"
  bah from --name "${ctr}" scratch >/dev/null
  bah add "${ctr}" "${tar}" / >/dev/null
  bah commit --rm --quiet "${ctr}" "${ref}" >/dev/null
  echo "base import (buildah from scratch, add, commit): $((SECONDS - start)) s" >>"${LOG_FILE}"
  echo "${ref}"
}

build_image() { # base_ref ref
  local start=${SECONDS}
  log "buildah bud: Dockerfile on $1 -> $2"
  # The build host's CA store is mounted into the RUN steps (never into a layer):
  # the build trusts what the host trusts, a TLS-inspecting proxy's CA included.
  (
    cd "${REPO}"
    bah bud --isolation chroot --pull=never --network host \
      --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
      --build-arg PYTHON_IMAGE="$1" --tag "$2" --file Dockerfile .
  ) >"${LOG_FILE}.bud" 2>&1 || { tail -n 40 "${LOG_FILE}.bud" >&2; die "buildah bud failed (${LOG_FILE}.bud)"; }
  echo "image build (buildah bud): $((SECONDS - start)) s" >>"${LOG_FILE}"
}

# Images and tarballs of other inputs that nobody used for a day; an image that a
# container still uses is kept (podman refuses to remove it).
prune() { # current_base_key current_ref
  local name f
  while read -r name; do
    [[ -n "${name}" && "${name}" != "$2" && "${name}" != "localhost/fleetscale-base:$1" ]] || continue
    if pod rmi "${name}" >/dev/null 2>&1; then log "pruned ${name}"; fi
  done < <(pod images --filter until=24h --format '{{.Repository}}:{{.Tag}}' 2>/dev/null \
             | grep -E '^localhost/fleetscale(-base)?:' || true)
  for f in "${CACHE}"/base/rootfs-*.tar; do
    [[ -f "${f}" && "${f}" != "${CACHE}/base/rootfs-$1.tar" ]] || continue
    if [[ -n "$(find "${f}" -mtime +1)" ]]; then rm -f "${f}"; log "pruned ${f}"; fi
  done
}

build() {
  need_tools mmdebstrap buildah podman runc
  mkdir -p "${CACHE}/builds" "${RUNROOT}"
  exec 9>"${CACHE}/.lock"
  flock 9
  local bkey ref key
  bkey="$(base_key)"
  key="$(image_key "${bkey}")"
  ref="localhost/fleetscale:local-${key}"
  if has_image "${ref}"; then echo "${ref}"; return; fi
  [[ "${FLEETSCALE_IMAGE_BUILD:-1}" != "0" ]] || die "${ref} is not built and FLEETSCALE_IMAGE_BUILD=0"
  LOG_FILE="${CACHE}/builds/${key}.log"
  local start=${SECONDS} base
  {
    echo "image ${ref} ($(date -u +%FT%TZ), storage driver ${DRIVER}, $(buildah --version))"
  } >"${LOG_FILE}"
  base="$(build_base "${bkey}")"
  build_image "${base}" "${ref}"
  echo "total: $((SECONDS - start)) s; size: $(pod image inspect --format '{{.Size}}' "${ref}") bytes" >>"${LOG_FILE}"
  sed 's/^/[image-local] /' "${LOG_FILE}" >&2
  prune "${bkey}" "${ref}"
  echo "${ref}"
}

ref() {
  local r
  r="$(image_ref)"
  has_image "${r}" || die "${r} is not built: run e2e/image-local.sh build (make image-local)"
  echo "${r}"
}

env_lines() {
  local r
  r="$(build)"
  cat <<EOF
export FLEETSCALE_E2E_LOCAL_IMAGE=${r}
export FLEETSCALE_E2E_LOCAL_IMAGE_TOOL=${E2E_DIR}/image-local.sh
EOF
}

ulimits() {
  # Root on this machine lacks CAP_SYS_RESOURCE, so no process can raise a hard limit,
  # and podman's defaults for a container (1048576 open files, 4194304 processes) are
  # above what it has itself: the host's hard limit of open files, and at most 32768
  # processes, which is what podman lowers its own limit to before starting runc.
  local n u
  n="$(ulimit -Hn)"; u="$(ulimit -Hu)"
  [[ "${n}" == unlimited ]] && n=1048576
  [[ "${u}" == unlimited || "${u}" -gt 32768 ]] && u=32768
  echo "--ulimit=nofile=${n}:${n}"
  echo "--ulimit=nproc=${u}:${u}"
}

run() {
  need_tools podman runc
  local r opts=() cmd=() limits=()
  r="${FLEETSCALE_E2E_LOCAL_IMAGE:-$(ref)}"
  while [[ $# -gt 0 ]]; do
    if [[ "$1" == -- ]]; then shift; cmd=("$@"); break; fi
    opts+=("$1"); shift
  done
  mapfile -t limits < <(ulimits)
  mkdir -p "${RUNROOT}"
  # exec: the caller's pid is podman's, which relays SIGTERM and SIGINT to the container.
  exec podman "${STORE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file \
    run --rm --pull=never --network=host \
    --read-only --read-only-tmpfs=false \
    --tmpfs "/tmp:rw,nosuid,nodev,size=${TMP_SIZE},mode=1777" \
    --cap-drop=all --security-opt=no-new-privileges \
    "${limits[@]}" "${opts[@]}" "${r}" "${cmd[@]}"
}

clean_containers() { # label=value
  [[ "${1:-}" == *=* ]] || die "usage: $0 clean-containers LABEL=VALUE"
  command -v podman >/dev/null 2>&1 || return 0
  local ids=()
  mapfile -t ids < <(pod ps --all --quiet --filter "label=$1" 2>/dev/null || true)
  [[ ${#ids[@]} -eq 0 ]] || { log "removing containers with label $1"; pod rm --force "${ids[@]}" >/dev/null; }
}

case "${1:-}" in
  build) build ;;
  ref) ref ;;
  env) env_lines ;;
  run) shift; run "$@" ;;
  podman) shift; pod "$@" ;;
  clean-containers) clean_containers "${2:-}" ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
