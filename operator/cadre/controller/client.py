"""The only module that talks to the Kubernetes API (besides Kopf's own watches).

Raw JSON on plain dicts: the kubernetes client's `ApiClient` does authentication, TLS and
connection pooling; requests are serialised by `param_serialize` and sent by `call_api`
without any model (de)serialisation (the legacy `_preload_content=False` path), which is
slow for big lists. Blocking calls run in threads through `asyncio.to_thread`.

Every request carries the user agent `cadre-operator/<version>` and is counted in the
`cadre_api_requests_total{verb,resource,code}` metric, so API writes per TrainingJob can
be measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from prometheus_client import Counter

from cadre import __version__

USER_AGENT: Final = f"cadre-operator/{__version__}"
MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"

API_REQUESTS = Counter(
    "cadre_api_requests_total",
    "Requests the operator sent to the Kubernetes API (Kopf's watches not included).",
    ["verb", "resource", "code"],
)


class ApiError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = ""
        self.message = body.decode("utf-8", errors="replace")[:2000]
        try:
            data = json.loads(body)
            if isinstance(data, dict):
                self.reason = str(data.get("reason") or "")
                self.message = str(data.get("message") or self.message)
        except ValueError:
            pass
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to reach the API server, for the Kopf login handler."""

    server: str
    ca_path: str | None
    verify_ssl: bool
    cert_file: str | None
    key_file: str | None
    token: str | None
    token_scheme: str | None


SERVICEACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where a pod's ServiceAccount token and CA are mounted; `$CADRE_SERVICEACCOUNT_DIR`
overrides it (tests; or a token projected elsewhere)."""


def load_configuration(kubeconfig: str | None = None) -> k8s_client.Configuration:
    """A client Configuration: the given kubeconfig, else in-cluster, else the default
    kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    configuration = k8s_client.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        return configuration
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        _load_incluster(configuration, os.environ.get("CADRE_SERVICEACCOUNT_DIR") or None)
        return configuration
    k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def _load_incluster(configuration: k8s_client.Configuration, directory: str | None) -> None:
    """In-cluster: host from $KUBERNETES_SERVICE_HOST/PORT, CA and token from `directory`
    (default SERVICEACCOUNT_DIR), the token re-read as soon as its file changes.

    The client's own loader re-reads the file only once a minute (its
    `refresh_api_key_hook`); that is enough for kubelet's rotation, where the old token
    stays valid until it expires, but not for a token revoked at once (its bound object
    deleted): Kopf's re-login and Cadre's next request would send the dead token again.
    """
    directory = directory or SERVICEACCOUNT_DIR
    token_file = os.path.join(directory, "token")
    k8s_config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=token_file,
        cert_filename=os.path.join(directory, "ca.crt"),
        try_refresh_token=False,  # _TokenFile below refreshes instead
    ).load_and_set(configuration)
    # The client declares the hook as `None` only (no type for a callable).
    configuration.refresh_api_key_hook = _TokenFile(token_file)  # type: ignore[assignment]


class _TokenFile:
    """A `refresh_api_key_hook` (the client calls it on every `get_api_key_with_prefix`:
    each request of `Kube`, and `credentials_of` in Kopf's login handler): the token file
    is read again when it changed (kubelet swaps it atomically: a new inode) or a minute
    passed; a missing or empty file keeps the token in use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._read_at = 0.0

    def __call__(self, configuration: k8s_client.Configuration) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp == self._stamp and time.monotonic() - self._read_at < 60:
                return
            try:
                with open(self.path, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError:
                return
            self._stamp, self._read_at = stamp, time.monotonic()
            if token:
                configuration.api_key["BearerToken"] = f"bearer {token}"


def credentials_of(configuration: k8s_client.Configuration) -> Credentials:
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None)
    if len(parts) == 1:
        token = parts[0]
    elif len(parts) == 2:
        scheme, token = parts[0], parts[1]
    return Credentials(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        verify_ssl=bool(configuration.verify_ssl),
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        token=token,
        token_scheme=scheme,
    )


def _resource_of(path: str) -> str:
    """`jobs`, `trainingjobs/status`... from an API path, for the metric's label."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if "namespaces" in parts:
        i = parts.index("namespaces")
        rest = parts[i + 2 :]
        if not rest:  # /api/v1/namespaces/<name>
            return "namespaces"
        parts = rest
    else:
        parts = parts[2:] if parts[0] == "api" else parts[3:]
    if len(parts) >= 3:
        return f"{parts[0]}/{parts[2]}"
    return parts[0] if parts else "unknown"


def collection_path(obj: Mapping[str, Any]) -> str:
    """The collection URL of a namespaced object (`apiVersion`, `kind`, namespace)."""
    api_version = str(obj["apiVersion"])
    plural = {
        "Job": "jobs",
        "Service": "services",
        "TrainingJob": "trainingjobs",
        "Event": "events",
    }[str(obj["kind"])]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}"


def trainingjob_path(namespace: str, name: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs/{name}"


def job_path(namespace: str, name: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"


def service_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/{name}"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def budget_path(name: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/resourcebudgets/{name}"


class Kube:
    """Async JSON access to the API server; plain dicts in and out."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self.configuration = configuration
        self._client = k8s_client.ApiClient(configuration)
        self._client.user_agent = USER_AGENT
        self._auth = ["BearerToken"]

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> Kube:
        return cls(load_configuration(kubeconfig))

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, header_params, serialized, _ = self._client.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=self._auth,
        )
        response = self._client.call_api(
            method, url, header_params=header_params, body=serialized, _request_timeout=60
        )
        raw = response.read()  # type: ignore[no-untyped-call]
        verb = method if "watch" not in path else "WATCH"
        API_REQUESTS.labels(verb, _resource_of(path), str(response.status)).inc()
        if 200 <= response.status < 300 or response.status in ok:
            return response.status, (json.loads(raw) if raw else None)
        raise ApiError(method, path, response.status, raw)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        return await asyncio.to_thread(self._request, method, path, body, content_type, ok)

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        status, data = await self.request("GET", path, ok=(404,))
        return None if status == 404 else data

    async def list(
        self, path: str, label_selector: str | None = None, page_size: int = 500
    ) -> list[dict[str, Any]]:
        """Every item of a collection, read in pages."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query: dict[str, str] = {"limit": str(page_size)}
            if label_selector:
                query["labelSelector"] = label_selector
            if token:
                query["continue"] = token
            _, data = await self.request("GET", f"{path}?{urlencode(query)}")
            items.extend(data.get("items") or [])
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def create(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create `obj`; if it is already there (409), read it. Returns (object, created)."""
        path = collection_path(obj)
        status, data = await self.request("POST", path, dict(obj), ok=(409,))
        if status != 409 or "name" not in obj["metadata"]:
            return data, True
        existing = await self.get(f"{path}/{obj['metadata']['name']}")
        if existing is None:  # deleted in between: try once more
            _, data = await self.request("POST", path, dict(obj))
            return data, True
        return existing, False

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        _, data = await self.request("PATCH", path, dict(patch), MERGE_PATCH)
        return dict(data)

    async def json_patch(
        self, path: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """RFC 6902 patch: a `test` operation makes it conditional (422 when it fails)."""
        _, data = await self.request("PATCH", path, [dict(o) for o in operations], JSON_PATCH)
        return dict(data)

    async def patch_status(self, path: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource with `{"status": status}`."""
        _, data = await self.request(
            "PATCH", f"{path}/status", {"status": dict(status)}, MERGE_PATCH
        )
        return dict(data)

    async def delete(self, path: str, propagation: str = "Background") -> bool:
        """Delete; False if it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        status, _ = await self.request("DELETE", path, body, ok=(404,))
        return status != 404
