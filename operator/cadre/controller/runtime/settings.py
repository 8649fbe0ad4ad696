"""Kopf's settings, all of them in this one startup function, and the login.

Kopf's defaults moved between releases; every setting the operator relies on is set here
explicitly, with the reason, so an upgrade of Kopf cannot silently change behaviour.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import kopf

from cadre.controller.client import USER_AGENT, credentials_of
from cadre.controller.runtime.context import Runtime
from cadre.core.api.names import LABEL_MODELDEPLOYMENT

FINALIZER = "cadre.dev/finalizer"
ANNOTATION_PREFIX = "cadre.dev"


@kopf.on.startup(id="cadre-settings")
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Bookkeeping under Cadre's own names. The TrainingJob handlers are event handlers and
    # write neither; handlers with retries (later kinds) will use them.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.consistency_timeout = 5.0

    # Kopf posts no Events: a standby must never write, and Cadre's handlers only feed the
    # cache (they cannot fail); Cadre posts its own transition Events from the leader.
    settings.posting.enabled = False

    # Kopf's peering is not leader election (it pauses watchers, not Cadre's own tasks):
    # every replica watches (a warm cache), and Cadre's own Lease decides who writes
    # (`cadre.controller.leader`). So no peering, no peering CRDs.
    settings.peering.standalone = True
    settings.peering.mandatory = False
    settings.peering.clusterwide = True

    # The resources are known at startup (the CRDs are installed by Helm): no dynamic
    # scanning of CRDs and namespaces, so no RBAC on CustomResourceDefinitions is needed.
    settings.scanning.disabled = True

    # Watches: the server ends each watch after 5 minutes, the client gives up after a
    # little more; 70 s without any event (bookmarks included) means a dead stream.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.watching.inactivity_timeout = 70.0
    settings.watching.chunk_size = 500
    settings.watching.initial_streaming = False
    # Likewise the serving children: Deployments and autoscalers of ModelDeployments.
    settings.watching.label_selectors["apps", "deployments"] = LABEL_MODELDEPLOYMENT
    settings.watching.label_selectors["autoscaling", "horizontalpodautoscalers"] = (
        LABEL_MODELDEPLOYMENT
    )

    # Per-object workers: bounded so that 10,000 objects listed at start cannot spawn
    # 10,000 coroutines at once; idle ones go after 5 s.
    settings.queueing.worker_limit = 256
    settings.queueing.idle_timeout = 5.0
    settings.queueing.exit_timeout = 2.0

    # Every handler is async; sync ones (none today) would run in this small pool.
    settings.execution.max_workers = 4

    settings.networking.request_timeout = 60.0
    settings.networking.connect_timeout = 10.0
    settings.networking.trust_env = False

    # Shorter than a pod's terminationGracePeriodSeconds (30 s by default).
    settings.process.ultimate_exiting_timeout = 25.0
    settings.background.cancellation_polling = 5.0


@kopf.on.login(id="cadre-login")
async def login(memo: Runtime, **_: Any) -> kopf.AiohttpSession:
    """Kopf's session from the same credentials as Cadre's own client (kubeconfig flag,
    in-cluster, or the default kubeconfig), with Cadre's user agent so the API server's
    audit log tells the operator's requests apart."""
    creds = credentials_of(memo.client.configuration)
    info = kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        insecure=not creds.verify_ssl,
        scheme=creds.token_scheme,
        token=creds.token,
        certificate_path=creds.cert_file,
        private_key_path=creds.key_file,
    )
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers={**info.as_http_headers(), "User-Agent": f"{USER_AGENT} kopf/{kopf_version()}"},
    )
    return kopf.AiohttpSession(server=creds.server, aiohttp_session=session)


def kopf_version() -> str:
    from importlib.metadata import version  # noqa: PLC0415

    try:
        return version("kopf")
    except Exception:
        return "unknown"
