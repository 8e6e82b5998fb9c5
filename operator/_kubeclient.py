"""Clients of the official `kubernetes` library for the operator's own API calls.

Why: kopf logs itself in for its watches and patches but does not configure the `kubernetes`
library, which the operator uses to create and delete other objects (ReportRequests of a
schedule, ...). One cached ApiClient, configured from KUBECONFIG when it is set (a laptop, the
e2e tests) and from the pod's service account otherwise. The clients are synchronous: call them
through `asyncio.to_thread`.
"""
from __future__ import annotations

import functools
import os

from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config

# Kubernetes API calls in flight at once. asyncio.to_thread's default pool has cpu+4 threads (6
# on a 2-core node) and the library's connection pool 5 x cpu: in a burst of reports the status
# writes and Events queued behind them while the API server had room.
API_CONCURRENCY = 16


@functools.lru_cache(maxsize=1)
def api_client() -> client.ApiClient:
    """The shared ApiClient (a private Configuration: the library's global one is untouched)."""
    configuration = client.Configuration()
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config(client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = API_CONCURRENCY
    return client.ApiClient(configuration)


def api_executor() -> ThreadPoolExecutor:
    """Threads for the synchronous client (the operator's default executor)."""
    return ThreadPoolExecutor(max_workers=API_CONCURRENCY, thread_name_prefix="kube-api")


def custom_api() -> client.CustomObjectsApi:
    """Custom resources (ReportRequest, ReportSchedule, ...)."""
    return client.CustomObjectsApi(api_client())


def core_api() -> client.CoreV1Api:
    """Core objects (ConfigMaps, Events, ...)."""
    return client.CoreV1Api(api_client())


def apps_api() -> client.AppsV1Api:
    """Deployments and their scale subresource (the pool scaler)."""
    return client.AppsV1Api(api_client())
