# syntax=docker/dockerfile:1
# The fleetscale operator image: `python -m fleetscale run` as a non-root numeric user.
#
#   docker build -t fleetscale:0.1.0 .
#   docker build --build-arg SYNC_FLAGS="--extra eks" -t fleetscale:0.1.0-eks .
#
# Two stages: `build` resolves the dependencies from uv.lock (exact versions and hashes) into a
# virtual environment; the final stage gets only that environment on a clean slim Python, with
# no pip, uv, compiler or source tree of the build.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
# Optional extras, e.g. "--extra eks --extra gke" for the cloud node-pool providers.
ARG SYNC_FLAGS=""
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/fleetscale/venv
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-editable ${SYNC_FLAGS}
COPY README.md ./
COPY operator ./operator
RUN uv sync --frozen --no-dev --no-editable ${SYNC_FLAGS}

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
