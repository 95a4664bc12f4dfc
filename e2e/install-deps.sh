#!/usr/bin/env bash
# System packages the local e2e environment needs: Prometheus and HAProxy (Debian's
# packages) and curl; and, for the operator image (e2e/image-local.sh), mmdebstrap (the
# base root filesystem from Debian's apt), buildah (builds the Dockerfile on it) and
# podman with runc (runs it). Idempotent; the packages' own services are kept stopped,
# since e2e/cluster.sh runs its own Prometheus, and the shed scenarios their own HAProxy,
# each with its own configuration.
set -euo pipefail

need=()
[[ -x "${PROMETHEUS_BIN:-/usr/bin/prometheus}" ]] || need+=(prometheus)
[[ -x "${HAPROXY_BIN:-/usr/sbin/haproxy}" ]] || need+=(haproxy)
command -v curl >/dev/null 2>&1 || need+=(curl)
for tool in mmdebstrap buildah podman runc; do
  command -v "${tool}" >/dev/null 2>&1 || need+=("${tool}")
done
[[ ${#need[@]} -gt 0 ]] || exit 0

SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo"
echo "[install-deps] apt-get install ${need[*]}" >&2
${SUDO} apt-get update -qq
DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
if [[ -d /run/systemd/system ]]; then
  ${SUDO} systemctl disable --now prometheus >/dev/null 2>&1 || true
  ${SUDO} systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
