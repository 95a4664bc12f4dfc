#!/usr/bin/env bash
# The whole local e2e run: environment up, the suite, environment down (always).
#
#   PYTHON=.venv/bin/python e2e/run.sh [PYTEST_ARGS...]
#
# Builds missing binaries first (e2e/build-binaries.sh; cached afterwards), the
# operator image (e2e/image-local.sh; cached too), and installs the Debian packages
# that are missing (e2e/install-deps.sh). The exit code is pytest's.
# FLEETSCALE_E2E_OPERATOR=image runs the suite's operator from that image.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHON="${PYTHON:-python}"

"${E2E_DIR}/install-deps.sh"
"${E2E_DIR}/build-binaries.sh"
image_env="$("${E2E_DIR}/image-local.sh" env)"
eval "${image_env}"
trap '"${E2E_DIR}/cluster.sh" down' EXIT
"${E2E_DIR}/cluster.sh" up >/dev/null
eval "$("${E2E_DIR}/cluster.sh" env)"
cd "${E2E_DIR}/.."
"${PYTHON}" -m pytest e2e "$@"
