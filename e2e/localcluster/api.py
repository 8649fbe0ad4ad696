"""A small JSON client for the local API server, standard library only.

The cluster's own start-up (readiness, namespaces, nodes, CRDs) needs a handful of calls;
this keeps the package free of the kubernetes client's import time and lets node creation
use one keep-alive connection per worker thread. Every address it dials is 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        super().__init__(f"{method} {path} -> {status}: {body[:500]}")


def client_tls(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS context that trusts the cluster's CA and presents a client certificate."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def unverified_tls() -> ssl.SSLContext:
    """For /healthz of kube-controller-manager and kube-scheduler on loopback, which
    serve a self-signed certificate of their own."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


DEFAULT_USER_AGENT = "cadre-localcluster"


class Api:
    """JSON over HTTPS to one API server, with a keep-alive connection per thread.

    user_agent is what the audit log records for its requests: the harness's own calls
    say `cadre-localcluster`, so a test can tell them from an operator's with the same
    identity, or act as a given client (LocalCluster.admin_api)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext,
        timeout: float = 30,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the local cluster only dials loopback, not {host}")
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.user_agent = user_agent
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                self.host, self.port, context=self.tls, timeout=self.timeout
            )
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """Returns (status, decoded JSON or text). Retries once on a dropped connection."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if payload is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt == 2:
                    raise
        text = raw.decode(errors="replace")
        try:
            data: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            data = text
        return resp.status, data

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> Any:
        status, data = self.request(method, path, body)
        if 200 <= status < 300 or status in ok:
            return data
        raise ApiError(method, path, status, data if isinstance(data, str) else json.dumps(data))

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def exists(self, path: str) -> bool:
        status, data = self.request("GET", path)
        if status == 404:
            return False
        if 200 <= status < 300:
            return True
        raise ApiError("GET", path, status, json.dumps(data))

    def create(self, path: str, obj: dict[str, Any], exist_ok: bool = False) -> Any:
        return self.call("POST", path, obj, ok=(409,) if exist_ok else ())

    def patch(
        self, path: str, patch: Any, content_type: str = "application/merge-patch+json"
    ) -> Any:
        """A merge patch by default (`application/json-patch+json` for a JSON patch)."""
        status, data = self.request("PATCH", path, patch, content_type=content_type)
        if 200 <= status < 300:
            return data
        raise ApiError("PATCH", path, status, data if isinstance(data, str) else json.dumps(data))


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.1,
    on_wait: Callable[[], None] | None = None,
) -> None:
    """Polls check() until it returns True; raises TimeoutError naming `what`.

    on_wait runs between attempts (the cluster uses it to notice a process that died).
    Exceptions from check() count as "not yet" until the deadline, then are chained.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        if on_wait is not None:
            on_wait()
        if time.monotonic() > deadline:
            detail = f" (last error: {last})" if last else ""
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}{detail}"
            ) from last
        time.sleep(interval)
