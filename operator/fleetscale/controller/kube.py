"""The controller's own Kubernetes I/O: credentials for both clients, and status writes.

Role: load the cluster credentials once (in-cluster ServiceAccount, else KUBECONFIG) into one
``kubernetes.client.Configuration`` that feeds both kopf's aiohttp client (through a login
handler) and the official client the adapters use, so the two never disagree about which
cluster they talk to. Write either kind's status as a JSON merge patch through its ``/status``
subresource. Callers: ``controller.handlers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import kopf
import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from fleetscale.api.base import API_VERSION
from fleetscale.controller.loop import ObjectGone
from fleetscale.kubeapi import MERGE_PATCH, KubeJson, RetryPolicy, resource_path


class StatusWriter(Protocol):
    """Writes one kind's status subresource."""

    async def patch_status(
        self, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> None:
        """Apply ``patch`` (JSON merge patch of .status). Raises ObjectGone if deleted."""
        ...


class KubernetesStatusWriter:
    """StatusWriter through the one retrying client (``KubeJson``: a worker thread, retries).

    A throttled (429) or failing (5xx) write is retried with backoff like every adapter
    request: thousands of pools starting at once meet the API server's fairness limits.
    ``namespace`` is None for a cluster-scoped kind.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        plural: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())
        self._plural = plural

    async def patch_status(
        self, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> None:
        path = resource_path(
            API_VERSION, self._plural, namespace=namespace, name=name, subresource="status"
        )
        try:
            await self._api.request(
                "PATCH", path, body={"status": dict(patch)}, content_type=MERGE_PATCH
            )
        except ApiException as error:
            if error.status == 404:
                where = f"{namespace}/{name}" if namespace is not None else name
                raise ObjectGone(f"{self._plural} {where} no longer exists") from error
            raise


# Threads for the synchronous Kubernetes and Prometheus clients: asyncio's default pool
# (cores + 4 threads) queued 2,000 requests behind 6 threads when 1,000 pools ticked at once.
IO_THREADS = 32


def io_executor() -> ThreadPoolExecutor:
    """The executor ``asyncio.to_thread`` runs the clients' calls in (set at startup)."""
    return ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="fleetscale-io")


def load_configuration() -> kubernetes.client.Configuration:
    """Cluster credentials: the pod's ServiceAccount when in a cluster, else KUBECONFIG."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    # One pooled connection per I/O thread, so concurrent calls are not opened and dropped.
    configuration.connection_pool_maxsize = IO_THREADS
    return configuration


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """The same credentials in the form kopf's own client takes."""
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )
