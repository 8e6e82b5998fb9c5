"""The API's own small asynchronous client for ReportRequests (and, read-only, the
ReportTemplates of the catalog) on the Kubernetes API.

Why not the operator's client: layers (the API may not import goreports.operator). Why not the
`kubernetes` library's calls: they are synchronous, and a watch in a thread cannot be stopped
when an SSE or gRPC client goes away. So the `kubernetes` library only loads the configuration
(KUBECONFIG on a laptop and in the e2e tests, the pod's service account in the cluster, with
its token refresh), and aiohttp makes the calls: create, get, list, delete and a watch that is
cancelled with the request that follows it.
"""
from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes import client, config

GROUP = "goreports.io"
VERSION = "v1alpha1"
PLURAL = "reportrequests"
TEMPLATES = "reporttemplates"


@dataclass
class KubeError(Exception):
    """The Kubernetes API refused a call (its status) or could not be reached (503)."""

    status: int
    reason: str
    message: str
    causes: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """A private Configuration: the given or $KUBECONFIG file, else the in-cluster account."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        config.load_kube_config(config_file=path, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return configuration


class KubeClient:
    """ReportRequest calls over one aiohttp session (create lazily inside the running loop)."""

    def __init__(self, configuration: client.Configuration, *, timeout: float = 30.0) -> None:
        self._config = configuration
        self._base = configuration.host.rstrip("/")
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ssl = self._ssl_context()

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if not self._base.startswith("https"):
            return False
        if not self._config.verify_ssl:
            return False
        ctx = ssl.create_default_context(cafile=self._config.ssl_ca_cert or None)
        if self._config.cert_file:
            ctx.load_cert_chain(self._config.cert_file, self._config.key_file)
        return ctx

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        bearer = self._config.auth_settings().get("BearerToken")
        if bearer and bearer.get("value"):
            headers["Authorization"] = bearer["value"]
        return headers

    def _session_(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _path(namespace: str, name: str | None = None, plural: str = PLURAL) -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/{plural}"
        return f"{path}/{quote(name, safe='')}" if name else path

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: Any = None) -> dict[str, Any]:
        try:
            async with self._session_().request(
                    method, self._base + path, params=params, json=body, headers=self._headers(),
                    timeout=aiohttp.ClientTimeout(total=self._timeout)) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error(resp.status, text)
                data: dict[str, Any] = json.loads(text)
                return data
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise KubeError(503, "KubernetesUnreachable",
                            f"cannot reach the Kubernetes API at {self._base} "
                            f"({type(e).__name__})") from e

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", self._path(namespace), body=body)

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._call("GET", self._path(namespace, name))

    async def list(self, namespace: str, *, label_selector: str = "", limit: int = 0,
                   continue_token: str = "") -> dict[str, Any]:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        return await self._call("GET", self._path(namespace), params=params)

    async def get_template(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._call("GET", self._path(namespace, name, TEMPLATES))

    async def list_templates(self, namespace: str | None) -> dict[str, Any]:
        """The ReportTemplates of one namespace, or of every namespace (None)."""
        path = (self._path(namespace, plural=TEMPLATES) if namespace is not None
                else f"/apis/{GROUP}/{VERSION}/{TEMPLATES}")
        return await self._call("GET", path, params={"limit": "500"})

    async def delete(self, namespace: str, name: str) -> dict[str, Any]:
        """Delete in the background: the operator's finalizer runs, the object goes after it."""
        return await self._call("DELETE", self._path(namespace, name),
                                body={"kind": "DeleteOptions", "apiVersion": "v1",
                                      "propagationPolicy": "Background"})

    async def watch(self, namespace: str, name: str, resource_version: str, *,
                    timeout_seconds: int = 300) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) for each change of one report after resource_version, until the API
        server ends the watch (timeout_seconds). A 410 (version too old) raises KubeError."""
        params = {"watch": "true", "fieldSelector": f"metadata.name={name}",
                  "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds)}
        try:
            async with self._session_().get(
                    self._base + self._path(namespace), params=params, headers=self._headers(),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout,
                                                  sock_read=timeout_seconds + 30)) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.text())
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type", ""), event.get("object") or {}
                    if kind == "ERROR":
                        raise _error(int(obj.get("code") or 500), json.dumps(obj))
                    if kind != "BOOKMARK":
                        yield kind, obj
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise KubeError(503, "KubernetesUnreachable",
                            f"lost the watch on the Kubernetes API at {self._base} "
                            f"({type(e).__name__})") from e


def _error(status: int, text: str) -> KubeError:
    """A KubeError from a metav1.Status body (or whatever text the server sent)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    details = data.get("details") or {}
    causes = [{"field": str(c.get("field", "")), "message": str(c.get("message", ""))}
              for c in details.get("causes") or [] if isinstance(c, dict)]
    return KubeError(status, str(data.get("reason") or "Error"),
                     str(data.get("message") or text[:500]), causes)
