"""`cadre run` "in a pod": no --kubeconfig, KUBERNETES_SERVICE_HOST/PORT set and a
ServiceAccount directory (token, ca.crt) given by $CADRE_SERVICEACCOUNT_DIR, against the
real kube-apiserver. The tokens are TokenRequests of cadre-system/cadre-operator bound to a
Secret, so deleting the Secret revokes a token at once (a token lives at least 600 s: its
expiry cannot be waited for). Rotation: a new token is written to the file as kubelet
does (atomic rename), the old one is revoked, and the operator must carry on, its Kopf
watches re-authenticating through the login handler and Cadre's own client reading the
new token.

The operator dials the API server through a TCP relay (TLS passes through it untouched):
the test cuts the relayed connections after the rotation, as an API server restart or a
network blip would. Without that, Kopf's open watches, authenticated when they started,
would keep streaming for their 300 s and never need the new token."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cadre_process import RBAC, OperatorProcess
from localcluster import LocalCluster
from trainingjobs import get, trainingjob
from waiting import eventually

pytestmark = pytest.mark.integration

SYSTEM = "cadre-system"
SERVICE_ACCOUNT = f"/api/v1/namespaces/{SYSTEM}/serviceaccounts/cadre-operator"
SECRETS = f"/api/v1/namespaces/{SYSTEM}/secrets"
TJS = "/apis/cadre.dev/v1alpha1/namespaces/{ns}/trainingjobs"


class Relay:
    """127.0.0.1:<port> -> the API server, byte for byte; `cut()` closes every relayed
    connection (the client sees its streams end, as when the server goes away)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.accepted = 0
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _shutdown(s)
            with self._lock:
                self._sockets -= {src, dst}

    def cut(self) -> int:
        """Close all relayed connections; returns how many sockets were open."""
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            _shutdown(s)
        return len(sockets)

    def close(self) -> None:
        self._server.close()
        self.cut()


def _shutdown(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@dataclass
class InCluster:
    operator: OperatorProcess
    relay: Relay
    token_file: Path
    secrets: list[str]


def bound_token(apiserver: LocalCluster, secrets: list[str]) -> str:
    """A new Secret in cadre-system, and a token of cadre-operator bound to it."""
    name = f"cadre-token-anchor-{uuid.uuid4().hex[:8]}"
    secret = apiserver.api.create(
        SECRETS,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque"},
    )
    secrets.append(name)
    request = apiserver.api.call(
        "POST",
        f"{SERVICE_ACCOUNT}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": name,
                    "uid": secret["metadata"]["uid"],
                },
            },
        },
    )
    return str(request["status"]["token"])


def write_token(path: Path, token: str) -> None:
    """As kubelet does: a new file renamed over the old one."""
    tmp = path.with_name(f".token-{uuid.uuid4().hex[:8]}")
    tmp.write_text(token)
    os.replace(tmp, path)


def status_with(apiserver: LocalCluster, token: str) -> int:
    """The API server's answer to a request made with `token` (200, or 401 when revoked)."""
    tls = ssl.create_default_context(cafile=str(apiserver.pki_paths.ca_cert))
    conn = http.client.HTTPSConnection(
        "127.0.0.1", apiserver.ports["apiserver"], context=tls, timeout=10
    )
    try:
        conn.request(
            "GET",
            "/apis/cadre.dev/v1alpha1/trainingjobs?limit=1",
            headers={"Authorization": f"Bearer {token}"},
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def queued(apiserver: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The TrainingJob once the operator wrote it Queued (a write with its token)."""
    tj = get(apiserver, f"{TJS.format(ns=namespace)}/{name}") or {}
    return tj if (tj.get("status") or {}).get("phase") == "Queued" else None


def messages(op: OperatorProcess) -> list[str]:
    return [str(r.get("event", "")) for r in op.log_records()]


@pytest.fixture(scope="module")
def incluster(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InCluster]:
    apiserver.kubectl("create", "namespace", SYSTEM, check=False)
    apiserver.kubectl("apply", "-f", str(RBAC))
    workdir = tmp_path_factory.mktemp("incluster")
    sa_dir = workdir / "serviceaccount"
    sa_dir.mkdir()
    shutil.copyfile(apiserver.pki_paths.ca_cert, sa_dir / "ca.crt")
    secrets: list[str] = []
    write_token(sa_dir / "token", bound_token(apiserver, secrets))
    relay = Relay(apiserver.ports["apiserver"])
    op = OperatorProcess(
        None,
        workdir,
        env={
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(relay.port),
            "CADRE_SERVICEACCOUNT_DIR": str(sa_dir),
        },
    )
    try:
        yield InCluster(op.start(), relay, sa_dir / "token", secrets)
        assert op.alive(), op.log_tail()
    finally:
        op.stop()
        relay.close()
        for name in secrets:
            apiserver.api.call("DELETE", f"{SECRETS}/{name}", ok=(404,))


def test_runs_in_cluster_with_a_serviceaccount_token(
    incluster: InCluster, apiserver: LocalCluster, namespace: str
) -> None:
    op = incluster.operator
    assert op.healthy()
    (start,) = [r for r in op.log_records() if r.get("event") == "cadre operator starting"]
    assert start["server"] == f"https://127.0.0.1:{incluster.relay.port}"
    assert incluster.relay.accepted > 0  # it did dial KUBERNETES_SERVICE_HOST:PORT

    apiserver.api.create(TJS.format(ns=namespace), trainingjob("incluster"))
    tj = eventually("its status written", lambda: queued(apiserver, namespace, "incluster"))
    assert tj["status"]["queue"]["reason"]  # no node here: it waits, and says why
    assert "Initial authentication has finished." in messages(op)


def test_survives_token_rotation_and_revocation(
    incluster: InCluster, apiserver: LocalCluster, namespace: str
) -> None:
    op = incluster.operator
    old_token = incluster.token_file.read_text()
    old_secret = incluster.secrets[-1]
    assert status_with(apiserver, old_token) == 200

    # Rotate, then revoke the old token: from now on only the file's token works.
    new_token = bound_token(apiserver, incluster.secrets)
    write_token(incluster.token_file, new_token)
    apiserver.api.call("DELETE", f"{SECRETS}/{old_secret}")
    eventually("the old token revoked", lambda: status_with(apiserver, old_token) == 401)
    assert status_with(apiserver, new_token) == 200

    # Kopf's watches start again, with the revoked token: 401, then the login handler.
    assert incluster.relay.cut() > 0
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("rotated"))
    eventually(
        "the status written after the rotation",
        lambda: queued(apiserver, namespace, "rotated"),
        timeout=45,
    )
    assert op.alive(), op.log_tail()
    assert op.healthy()
    eventually(
        "Kopf's re-authentication in the log",
        lambda: "Re-authentication has finished." in messages(op),
        timeout=10,
    )
    logged = messages(op)
    assert not [m for m in logged if "Ran out of valid credentials" in m], op.log_tail()
    # One login with the new token, not a loop of logins handing back the revoked one
    # (the client's own refresh re-reads the token file only once a minute).
    assert logged.count("Re-authentication has been initiated.") <= 3, op.log_tail()

    # Both clients use the new token from now on: a third TrainingJob is handled too.
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("after"))
    eventually("the status of a later TrainingJob", lambda: queued(apiserver, namespace, "after"))
    assert op.alive(), op.log_tail()
