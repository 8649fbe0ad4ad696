"""The one client Cadre uses to talk to the API server (Kopf's watch streams aside).

Raw JSON on plain dicts over one pooled `aiohttp` session (the library Kopf uses too):
no generated models, no thread pool. The `kubernetes` package is used only to read a
kubeconfig. Every call:

- has a timeout (`api.timeoutSeconds` per attempt);
- is retried with exponential backoff and jitter (tenacity) on 429 (honouring
  `Retry-After`), 500/502/503/504 and network errors, up to `api.retries` times; when it
  gives up it says so in one log line and raises `ApiError` (a network failure too:
  `ApiUnreachableError`), so a caller never dies on an exception it does not expect;
- is counted in `cadre_api_requests_total{verb,resource,code}` (with the user agent
  `cadre-operator/<version>`, the API server's audit log tells Cadre's requests apart).

Writes (POST, PUT, PATCH, DELETE) pass the write gate first: a replica that does not hold
the leader's Lease, or whose renewal deadline has passed, raises `NotLeaderError` instead of
writing. The gate is checked before each attempt and again at the last moment: by the
request body itself (`FencedBody`), in the same synchronous step that hands the request's
first bytes to the socket. Checked any earlier (when the connection is taken from the pool,
say), a process frozen between the check and the send would send a stale write once it
thaws (seen in CI: an Event created by a paused leader after its successor's first write).
See `leader.py` and docs/architecture.md: fencing.

A write is retried only where that is safe: conditional writes (a resourceVersion, a UID
precondition, a JSON patch `test`) fail cleanly the second time, a create meets its own
object (409: read back), and Cadre's merge patches set values rather than add to them.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import orjson
import structlog
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from prometheus_client import Counter, Histogram
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cadre import __version__
from cadre.controller.faults import FaultInjector

log = structlog.get_logger("cadre.client")

USER_AGENT: Final = f"cadre-operator/{__version__}"
MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
WRITE_VERBS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER: Final = 60.0

API_REQUESTS = Counter(
    "cadre_api_requests_total",
    "Requests the operator sent to the Kubernetes API, each attempt (Kopf's watches not "
    "included); verb as the API server's metrics name it (LIST: a GET of a collection); "
    "code is the HTTP status, or timeout / network.",
    ["verb", "resource", "code"],
)
API_RETRIES = Counter(
    "cadre_api_retries_total",
    "Attempts of an API call that failed and were retried.",
    ["verb", "resource"],
)
API_FAILURES = Counter(
    "cadre_api_failures_total",
    "API calls given up after their retries (the caller decides what next).",
    ["verb", "resource"],
)
API_SECONDS = Histogram(
    "cadre_api_request_duration_seconds",
    "Time of one API call, its retries included.",
    ["verb"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class ApiError(Exception):
    """A non-2xx answer of the API server (or, as `ApiUnreachableError`, none at all)."""

    def __init__(self, method: str, path: str, status: int, body: bytes | str = b"") -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = ""
        raw = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        self.message = raw[:2000]
        self.retry_after: float | None = None
        try:
            data = orjson.loads(raw) if raw else None
            if isinstance(data, dict):
                self.reason = str(data.get("reason") or "")
                self.message = str(data.get("message") or self.message)
        except ValueError:
            pass
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUSES

    @property
    def namespace_going(self) -> bool:
        """The answer to a create in a namespace that is being deleted, or is gone."""
        if self.status == 403:
            return "being terminated" in self.message
        return self.status == 404 and self.message.startswith("namespaces ")


class ApiUnreachableError(ApiError):
    """No answer: a timeout or a network error (status 0)."""

    def __init__(self, method: str, path: str, cause: BaseException) -> None:
        kind = "timeout" if isinstance(cause, TimeoutError) else "network"
        super().__init__(method, path, 0, f"{kind}: {cause!r}")
        self.kind = kind
        self.reason = "Timeout" if kind == "timeout" else "NetworkError"

    @property
    def retryable(self) -> bool:
        return True


class NotLeaderError(Exception):
    """A write was refused before it was sent: this replica does not hold the lease."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: not sent, this replica is not the leader")
        self.method = method
        self.path = path


class FencedBody(aiohttp.BytesPayload):
    """A write's body that asks the write gate when aiohttp writes it. aiohttp holds a
    request's headers back and sends them with the first body chunk, so nothing of the
    request reaches the socket before this check, and nothing can run between the check
    and the send (`StreamWriter.write` hands the bytes to the transport without yielding)."""

    def __init__(
        self,
        value: bytes,
        content_type: str,
        may_write: Callable[[], bool],
        refusal: NotLeaderError,
    ) -> None:
        super().__init__(value, content_type=content_type)
        self._may_write = may_write
        self._refusal = refusal

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        if not self._may_write():
            raise self._refusal
        await super().write_with_length(writer, content_length)


def _refused_by_gate(exc: BaseException) -> NotLeaderError | None:
    """The gate's refusal, when aiohttp wrapped it (a body that would not write)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, NotLeaderError):
            return cause
        cause = cause.__cause__
    return None


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
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        _load_incluster(configuration, os.environ.get("CADRE_SERVICEACCOUNT_DIR") or None)
        return configuration
    else:
        k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    if configuration.refresh_api_key_hook is not None:
        hook = _ThrottledRefresh(configuration.refresh_api_key_hook)
        configuration.refresh_api_key_hook = hook
    return configuration


class _ThrottledRefresh:
    """The kubeconfig loader's `refresh_api_key_hook`, run at most every REFRESH_SECONDS.

    The kubernetes package's hook runs for every request's Authorization header and sets
    every field of the Configuration again (the host's setter scans the environment for
    proxies): 5% of the operator's CPU in S1, at 100 requests a second. It renews a token
    only 5 minutes before its expiry, so running it every few seconds renews in time. It
    replaces itself on the Configuration each time it runs; the new one is wrapped again.
    """

    REFRESH_SECONDS: Final = 5.0

    def __init__(self, hook: Callable[[k8s_client.Configuration], None]) -> None:
        self._hook = hook
        self._lock = threading.Lock()
        self._ran_at: float | None = None

    def __call__(self, configuration: k8s_client.Configuration) -> None:
        with self._lock:
            now = time.monotonic()
            if self._ran_at is not None and now - self._ran_at < self.REFRESH_SECONDS:
                return
            self._ran_at = now
            self._hook(configuration)
            replaced = configuration.refresh_api_key_hook
            if replaced is not None and replaced is not self:
                self._hook = replaced
                configuration.refresh_api_key_hook = self


def service_account_namespace() -> str | None:
    """The namespace of the pod's ServiceAccount (in-cluster), if mounted."""
    directory = os.environ.get("CADRE_SERVICEACCOUNT_DIR") or SERVICEACCOUNT_DIR
    try:
        with open(os.path.join(directory, "namespace"), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _load_incluster(configuration: k8s_client.Configuration, directory: str | None) -> None:
    """In-cluster: host from $KUBERNETES_SERVICE_HOST/PORT, CA and token from `directory`
    (default SERVICEACCOUNT_DIR), the token re-read as soon as its file changes.

    The kubernetes package's loader re-reads the file only once a minute; that is enough
    for kubelet's rotation, where the old token stays valid until it expires, but not for
    a token revoked at once (its bound object deleted): Kopf's re-login and Cadre's next
    request would send the dead token again.
    """
    directory = directory or SERVICEACCOUNT_DIR
    token_file = os.path.join(directory, "token")
    k8s_config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=token_file,
        cert_filename=os.path.join(directory, "ca.crt"),
        try_refresh_token=False,  # _TokenFile below refreshes instead
    ).load_and_set(configuration)
    # The package declares the hook as `None` only (no type for a callable).
    configuration.refresh_api_key_hook = _TokenFile(token_file)  # type: ignore[assignment]


class _TokenFile:
    """A `refresh_api_key_hook` (called for every request's Authorization header and by
    `credentials_of` in Kopf's login handler): the token file is read again when it
    changed (kubelet swaps it atomically: a new inode) or a minute passed; a missing or
    empty file keeps the token in use."""

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
    header = _authorization(configuration)
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


def _authorization(configuration: k8s_client.Configuration) -> str | None:
    """The Authorization header value (the refresh hook re-reads a rotated token)."""
    value = configuration.get_api_key_with_prefix("BearerToken")
    if not value:
        value = configuration.get_api_key_with_prefix("authorization")
    return str(value) if value else None


def ssl_context_of(configuration: k8s_client.Configuration) -> ssl.SSLContext | bool:
    if not configuration.host.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _split_path(path: str) -> tuple[str, str | None, list[str]]:
    """(apiVersion, namespace or None, [resource, name, subresource] as far as the path
    goes) of an API path; `/api/v1/namespaces/<name>` is the namespaces resource."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts and parts[0] == "api":  # /api/v1/...
        api_version, rest = "/".join(parts[1:2]), parts[2:]
    else:  # /apis/<group>/<version>/...
        api_version, rest = "/".join(parts[1:3]), parts[3:]
    if len(rest) > 2 and rest[0] == "namespaces":
        return api_version, rest[1], rest[2:]
    return api_version, None, rest


def _resource_parts(path: str) -> list[str]:
    """An API path after its group, version and namespace: [resource, name, subresource]."""
    return _split_path(path)[2]


def resource_of(path: str) -> str:
    """`jobs`, `trainingjobs/status`... from an API path, for the metric's label."""
    parts = _resource_parts(path)
    if len(parts) >= 3:
        return f"{parts[0]}/{parts[2]}"
    return parts[0] if parts else "unknown"


def verb_of(method: str, path: str) -> str:
    """The verb as the API server's own metrics name it: LIST for a GET of a collection."""
    if method == "GET" and len(_resource_parts(path)) == 1:
        return "LIST"
    return method


_PLURALS: Final = {
    "Job": "jobs",
    "Service": "services",
    "TrainingJob": "trainingjobs",
    "Event": "events",
    "Lease": "leases",
    "ConfigMap": "configmaps",
    "Pod": "pods",
    "ModelDeployment": "modeldeployments",
    "Deployment": "deployments",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "HTTPRoute": "httproutes",
    "PodGroup": "podgroups",
}


_KINDS: Final = {plural: kind for kind, plural in _PLURALS.items()}


def _object_parts(path: str) -> tuple[str, str, str, str]:
    """(apiVersion, namespace, plural, name) of a namespaced object's path."""
    api_version, namespace, rest = _split_path(path)
    if namespace is None or len(rest) != 2:
        raise ValueError(f"not the path of a namespaced object: {path}")
    return api_version, namespace, rest[0], rest[1]


def collection_path(obj: Mapping[str, Any]) -> str:
    """The collection URL of a namespaced object (`apiVersion`, `kind`, namespace)."""
    api_version = str(obj["apiVersion"])
    plural = _PLURALS[str(obj["kind"])]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}"


def trainingjob_path(namespace: str, name: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs/{name}"


def modeldeployment_path(namespace: str, name: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/modeldeployments/{name}"


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def autoscaler_path(namespace: str, name: str) -> str:
    return f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}"


def http_route_path(namespace: str, name: str) -> str:
    return f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}"


def job_path(namespace: str, name: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"


def service_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/{name}"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def budget_path(name: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/resourcebudgets/{name}"


def lease_path(namespace: str, name: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    timeout_seconds: float = 30.0
    """Per attempt; a list is read in pages, each page is an attempt."""
    connect_timeout_seconds: float = 5.0
    retries: int = 5
    """Attempts after the first on 429, 5xx and network errors."""
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 10.0
    max_connections: int = 64


WriteGate = Callable[[], bool]
Items = list[dict[str, Any]]
"""Objects of a list, as decoded JSON."""


class ApiClient:
    """Async JSON access to the API server; plain dicts in and out."""

    def __init__(
        self,
        configuration: k8s_client.Configuration,
        settings: ClientSettings | None = None,
        *,
        user_agent: str = USER_AGENT,
        faults: FaultInjector | None = None,
    ) -> None:
        self.configuration = configuration
        self.settings = settings or ClientSettings()
        self.user_agent = user_agent
        self.faults = faults
        self.write_gate: WriteGate | None = None
        """None: every write goes (tools, tests). Set by the leader elector."""
        self.on_recovered: Callable[[], None] | None = None
        """Called when a call succeeds after calls failed for want of an answer (the API
        server was unreachable): watches may have missed events, time for a resync."""
        self._unreachable_since: float | None = None
        self._backoff = wait_exponential_jitter(
            multiplier=self.settings.backoff_initial_seconds,
            max=self.settings.backoff_max_seconds,
            jitter=self.settings.backoff_initial_seconds,
        )
        self._server = configuration.host.rstrip("/")
        self._ssl = ssl_context_of(configuration)
        self._session: aiohttp.ClientSession | None = None
        self._own_session: aiohttp.ClientSession | None = None
        """For `own_connection` requests (the leader's Lease): a connection of their own."""

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None = None,
        settings: ClientSettings | None = None,
        **kwargs: Any,
    ) -> ApiClient:
        return cls(load_configuration(kubeconfig), settings, **kwargs)

    def fork(self) -> ApiClient:
        """A client of the same server, settings and fault rules, with sessions of its own:
        for another thread's event loop (a session belongs to the loop that made it). No
        write gate and no recovery hook: what it writes is not fenced (the Lease)."""
        return ApiClient(
            self.configuration, self.settings, user_agent=self.user_agent, faults=self.faults
        )

    def _get_session(self, own_connection: bool = False) -> aiohttp.ClientSession:
        # Created lazily, inside the running event loop that uses it.
        if own_connection:
            if self._own_session is None or self._own_session.closed:
                self._own_session = self._new_session(limit=1)
            return self._own_session
        if self._session is None or self._session.closed:
            self._session = self._new_session(limit=self.settings.max_connections)
        return self._session

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=limit, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(
                total=self.settings.timeout_seconds,
                connect=self.settings.connect_timeout_seconds,
            ),
            headers={"User-Agent": self.user_agent, "Accept": "application/json"},
            trust_env=False,
        )

    async def close(self) -> None:
        for session in (self._session, self._own_session):
            if session is not None:
                await session.close()
        self._session = self._own_session = None

    # -- the write gate -----------------------------------------------------------------
    def _may_write(self) -> bool:
        return self.write_gate is None or self.write_gate()

    # -- requests -------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (),
        *,
        fenced: bool = True,
        retries: int | None = None,
        own_connection: bool = False,
    ) -> tuple[int, Any]:
        """Send one call (with its retries); returns (status, decoded body). Statuses in
        `ok` are answers, not errors. `fenced=False` only for the leader's own Lease.
        `own_connection`: on a connection of its own, never queued behind the pool's
        (aiohttp counts the wait for a pooled connection against the connect timeout, and
        a takeover's reads and writes can hold all of them): the leader's Lease."""
        resource = resource_of(path)
        verb = verb_of(method, path)
        started = time.perf_counter()
        attempts = 1 + (self.settings.retries if retries is None else retries)

        def one_try() -> Awaitable[tuple[int, Any]]:
            return self._attempt(
                method,
                path,
                body,
                content_type,
                ok,
                fenced,
                resource,
                verb,
                own_connection=own_connection,
            )

        try:
            # The first try outside tenacity: its bookkeeping cost about a fifth of the
            # client's CPU per request, and nearly every request succeeds at once.
            try:
                result = await one_try()
            except ApiError as err:
                if attempts == 1 or not err.retryable:
                    raise
                result = await self._retry(err, one_try, attempts, verb, resource)
        except NotLeaderError:
            raise
        except ApiError as err:
            if err.retryable and attempts > 1:  # a single try is its caller's to report
                API_FAILURES.labels(verb, resource).inc()
                log.error(
                    "API call failed after retries: giving up",
                    verb=method,
                    path=path.split("?", 1)[0],
                    attempts=attempts,
                    status=err.status,
                    reason=err.reason,
                    error=err.message[:300],
                )
            raise
        finally:
            API_SECONDS.labels(verb).observe(time.perf_counter() - started)
        if self._unreachable_since is not None:
            down = time.monotonic() - self._unreachable_since
            self._unreachable_since = None
            log.info("API server reachable again", seconds=round(down, 1))
            if self.on_recovered is not None:
                self.on_recovered()
        return result

    async def _retry(
        self,
        failure: ApiError,
        one_try: Callable[[], Awaitable[tuple[int, Any]]],
        attempts: int,
        verb: str,
        resource: str,
    ) -> tuple[int, Any]:
        """The tries after a first one failed with `failure`, by tenacity: the failure is
        its first attempt's outcome, so the count, backoff and hooks are as if tenacity had
        made every try."""
        first: ApiError | None = failure

        def before_sleep(state: RetryCallState) -> None:
            API_RETRIES.labels(verb, resource).inc()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    replayed, first = first, None
                    raise replayed
                return await one_try()
        raise AssertionError("unreachable: tenacity returns or reraises")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        outcome = state.outcome
        err = outcome.exception() if outcome is not None else None
        if isinstance(err, ApiError) and err.retry_after is not None:
            return max(backoff, min(err.retry_after, _MAX_RETRY_AFTER))
        return float(backoff)

    async def _attempt(  # noqa: PLR0917 (one attempt of `request`, same arguments)
        self,
        method: str,
        path: str,
        body: Any,
        content_type: str,
        ok: tuple[int, ...],
        fenced: bool,
        resource: str,
        verb: str,
        *,
        own_connection: bool = False,
    ) -> tuple[int, Any]:
        write = method in WRITE_VERBS
        if write and fenced and not self._may_write():
            raise NotLeaderError(method, path)
        fault = self.faults.take(method, resource) if self.faults is not None else None
        if isinstance(fault, int):
            API_REQUESTS.labels(verb, resource, str(fault)).inc()
            err = ApiError(method, path, fault, orjson.dumps({"reason": "InjectedFault"}))
            if fault == 429:
                err.retry_after = 0.0
            raise err
        if fault in ("timeout", "network"):
            API_REQUESTS.labels(verb, resource, fault).inc()
            cause: BaseException = (
                TimeoutError("injected") if fault == "timeout" else ConnectionError("injected")
            )
            raise self._unreachable(method, path, cause)
        headers = {}
        authorization = _authorization(self.configuration)
        if authorization:
            headers["Authorization"] = authorization
        raw_body: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            raw_body = orjson.dumps(body)
        data: bytes | FencedBody | None = raw_body
        if write and fenced:
            # Every fenced write has a body (a DELETE its DeleteOptions): the body is the fence.
            data = FencedBody(
                raw_body or b"{}", content_type, self._may_write, NotLeaderError(method, path)
            )
        try:
            async with self._get_session(own_connection).request(
                method, self._server + path, data=data, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            refusal = _refused_by_gate(exc)
            if refusal is not None:
                raise refusal from None
            API_REQUESTS.labels(
                verb, resource, "timeout" if isinstance(exc, TimeoutError) else "network"
            ).inc()
            raise self._unreachable(method, path, exc) from exc
        API_REQUESTS.labels(verb, resource, str(status)).inc()
        if fault == "lost-response":
            raise self._unreachable(method, path, TimeoutError("injected: answer lost"))
        if 200 <= status < 300 or status in ok:
            return status, (orjson.loads(raw) if raw else None)
        err = ApiError(method, path, status, raw)
        if retry_after is not None:
            try:
                err.retry_after = float(retry_after)
            except ValueError:
                err.retry_after = None
        raise err

    def _unreachable(self, method: str, path: str, cause: BaseException) -> ApiUnreachableError:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
        return ApiUnreachableError(method, path, cause)

    # -- verbs ----------------------------------------------------------------------------
    async def get(self, path: str, *, own_connection: bool = False) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        status, data = await self.request("GET", path, ok=(404,), own_connection=own_connection)
        return None if status == 404 else data

    async def list(
        self, path: str, label_selector: str | None = None, page_size: int = 500
    ) -> Items:
        """Every item of a collection (see `pages`)."""
        return [item async for page in self.pages(path, label_selector, page_size) for item in page]

    async def pages(
        self, path: str, label_selector: str | None = None, page_size: int = 500
    ) -> AsyncIterator[Items]:
        """The items of a collection, a page at a time (see `versioned_pages`)."""
        async for items, _ in self.versioned_pages(path, label_selector, page_size):
            yield items

    async def versioned_pages(
        self,
        path: str,
        label_selector: str | None = None,
        page_size: int = 500,
        *,
        field_selector: str | None = None,
    ) -> AsyncIterator[tuple[Items, str]]:
        """The items of a collection a page at a time, each with the list's resourceVersion
        (a watch from it misses nothing), so that a list of 10,000 objects is never held
        whole: one consistent snapshot, the pages of one list sharing its resourceVersion.
        An expired continue token (410) starts the list over: the pages after it come from
        a newer snapshot."""
        token: str | None = None
        while True:
            query: dict[str, str] = {"limit": str(page_size)}
            if label_selector:
                query["labelSelector"] = label_selector
            if field_selector:
                query["fieldSelector"] = field_selector
            if token:
                query["continue"] = token
            try:
                _, data = await self.request("GET", f"{path}?{urlencode(query)}")
            except ApiError as err:
                if err.status != 410 or token is None:
                    raise
                log.info("list continue token expired; listing again", path=path)
                token = None
                continue
            metadata = data.get("metadata") or {}
            yield data.get("items") or [], str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue")
            if not token:
                return

    async def watch(
        self, path: str, query: Mapping[str, str], *, read_timeout: float = 330.0
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request ({"type", "object"}), until the server ends it
        (`timeoutSeconds` in `query`). An ERROR event (410 Gone: the version is too old) is
        raised as ApiError with its code; a broken stream as ApiUnreachableError."""
        resource = resource_of(path)
        headers = {}
        authorization = _authorization(self.configuration)
        if authorization:
            headers["Authorization"] = authorization
        url = f"{self._server}{path}?{urlencode({**query, 'watch': 'true'})}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_read=read_timeout, connect=self.settings.connect_timeout_seconds
        )
        try:
            async with self._get_session().get(url, headers=headers, timeout=timeout) as response:
                API_REQUESTS.labels("WATCH", resource, str(response.status)).inc()
                if response.status != 200:
                    raise ApiError("WATCH", path, response.status, await response.read())
                buffer = b""
                # chunks, not lines: aiohttp's line reader refuses lines over 64 KiB
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = orjson.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object") or {}
                            raise ApiError(
                                "WATCH", path, int(status.get("code") or 500), orjson.dumps(status)
                            )
                        yield event
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            API_REQUESTS.labels("WATCH", resource, "network").inc()
            raise self._unreachable("WATCH", path, exc) from exc

    async def create(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create `obj`; if it is already there (409), read it. Returns (object, created).
        A create retried after a lost answer meets its own object here."""
        path = collection_path(obj)
        status, data = await self.request("POST", path, dict(obj), ok=(409,))
        if status != 409 or "name" not in obj["metadata"]:
            return data, True
        existing = await self.get(f"{path}/{obj['metadata']['name']}")
        if existing is None:  # deleted in between: try once more
            _, data = await self.request("POST", path, dict(obj))
            return data, True
        return existing, False

    async def replace(self, path: str, obj: Mapping[str, Any], *, fenced: bool = True) -> Any:
        """PUT the whole object (its metadata.resourceVersion makes it conditional)."""
        _, data = await self.request("PUT", path, dict(obj), fenced=fenced)
        return data

    async def merge_patch(
        self, path: str, patch: Mapping[str, Any], *, resource_version: str | None = None
    ) -> dict[str, Any]:
        """RFC 7386 merge patch; with `resource_version`, applied only to that version
        (409 otherwise)."""
        body = dict(patch)
        if resource_version is not None:
            body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": resource_version}
        _, data = await self.request("PATCH", path, body, MERGE_PATCH)
        return dict(data)

    async def json_patch(
        self, path: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """RFC 6902 patch: a `test` operation makes it conditional (422 when it fails)."""
        _, data = await self.request("PATCH", path, [dict(o) for o in operations], JSON_PATCH)
        return dict(data)

    async def patch_status(
        self, path: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch the status subresource with `{"status": status}`; with
        `resource_version`, only if the object is still at that version (409 otherwise)."""
        return await self.merge_patch(
            f"{path}/status", {"status": dict(status)}, resource_version=resource_version
        )

    async def replace_status(
        self, path: str, status: Mapping[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        """Replace the status subresource of the object at `path` (namespaced) with
        `status`, only if the object is still at `resource_version` (409 otherwise). The
        body names the object and carries its status alone: a status write keeps the
        rest of the stored object whatever the body says. The API server spends 12% less
        CPU on it than on a merge patch of the same change, which it applies to the
        stored object encoded to JSON and decodes again (docs/benchmarks.md)."""
        api_version, namespace, plural, name = _object_parts(path)
        body = {
            "apiVersion": api_version,
            "kind": _KINDS[plural],
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": resource_version,
            },
            "status": dict(status),
        }
        _, data = await self.request("PUT", f"{path}/status", body)
        return dict(data)

    async def delete(
        self, path: str, *, uid: str | None = None, propagation: str = "Background"
    ) -> bool:
        """Delete; False if it was already gone, or (with `uid`) is another object of the
        same name now (the precondition failed: nothing was deleted)."""
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation,
        }
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        status, _ = await self.request("DELETE", path, body, ok=(404, 409))
        return status not in (404, 409)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ApiError) and exc.retryable
