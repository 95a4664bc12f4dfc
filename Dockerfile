# syntax=docker/dockerfile:1
# The fleetscale operator image: `python -m fleetscale run` as a non-root numeric user.
#
#   docker build -t fleetscale:0.1.0 .
#   docker build --build-arg SYNC_FLAGS="--extra eks" -t fleetscale:0.1.0-eks .
#
# PYTHON_IMAGE is the base of both stages: python:3.11-slim-bookworm (Python in /usr/local),
# or any Debian bookworm root with python3, python3-venv and ca-certificates (Python in /usr):
# `make image-local` builds on such a root made by mmdebstrap, with no registry at all.
#
# Two stages: `build` resolves the dependencies from uv.lock (exact versions and hashes) into a
# virtual environment; the final stage gets only that environment on a clean copy of the same
# base, with no pip, uv, compiler or source tree of the build.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
# Optional extras, e.g. "--extra eks --extra gke" for the cloud node-pool providers.
ARG SYNC_FLAGS=""
# uv in a virtual environment of its own, since Debian's python3 has no pip (and refuses a
# `pip install` outside a venv, PEP 668) where python:3.11-slim has one. `python3 -m venv`
# works on both, whether python3 is /usr/bin/python3 (Debian) or /usr/local/bin/python3
# (python:3.11-slim); only the uv binary goes on PATH, never that venv's python3.
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv
# UV_SYSTEM_CERTS: uv trusts the base's CA store (/etc/ssl/certs), as pip does, rather than
# the roots compiled into it, so a build behind a TLS-inspecting proxy works once the proxy's
# CA is in that store (`make image-local` mounts the build host's store into the RUN steps).
ENV UV_COMPILE_BYTECODE=1 \
    UV_SYSTEM_CERTS=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/fleetscale/venv
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-editable ${SYNC_FLAGS}
COPY README.md ./
COPY operator ./operator
# uv leaves a lock file in the environment that anyone may write (mode 0666); only uv uses it.
RUN uv sync --frozen --no-dev --no-editable ${SYNC_FLAGS} \
    && rm -f /opt/fleetscale/venv/.lock

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="fleetscale" \
      org.opencontainers.image.description="Kubernetes operator that sizes LLM inference fleets to their demand" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/fleetscale/venv /opt/fleetscale/venv
ENV PATH=/opt/fleetscale/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A numeric user (not root, not in /etc/passwd) so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["python", "-m", "fleetscale", "run"]
