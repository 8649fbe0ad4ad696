"""`cadre run`'s flags and config errors, and the API client's helpers, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.controller.client import collection_path, resource_of, verb_of
from cadre.controller.runtime.main import load_config
from cadre.tools.cli import build_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_run_flags_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADRE_CONFIG", "/etc/cadre/config.yaml")
    args = build_parser().parse_args(["run", "--metrics-port", "0", "--bind-address", "127.0.0.1"])
    assert args.config == "/etc/cadre/config.yaml"
    assert args.kubeconfig is None
    assert (args.metrics_port, args.health_port, args.bind_address) == (0, None, "127.0.0.1")
    assert args.log_format == "auto"


def test_config_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no operator config"):
        load_config(None)
    with pytest.raises(SystemExit, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("flavors: []\n")
    with pytest.raises(SystemExit, match="not a valid OperatorConfig"):
        load_config(str(bad))
    assert load_config(str(EXAMPLES / "operator-config.yaml")).flavor("t4") is not None


@pytest.mark.parametrize(
    ("path", "verb"),
    [
        ("/apis/batch/v1/namespaces/ns/jobs", "LIST"),
        ("/apis/batch/v1/namespaces/ns/jobs/j", "GET"),
        ("/apis/cadre.dev/v1alpha1/namespaces/ns/trainingjobs/t/status", "GET"),
        ("/apis/cadre.dev/v1alpha1/resourcebudgets?limit=500", "LIST"),
        ("/apis/cadre.dev/v1alpha1/resourcebudgets/vision", "GET"),
        ("/api/v1/nodes", "LIST"),
        ("/api/v1/namespaces", "LIST"),
        ("/api/v1/namespaces/ns", "GET"),
        ("/apis/batch/v1/jobs?labelSelector=x", "LIST"),
    ],
)
def test_metric_verb_label_says_list_for_a_collection(path: str, verb: str) -> None:
    """As the API server's own metrics: S6 counts GETs and LISTs apart."""
    assert verb_of("GET", path) == verb
    assert verb_of("PATCH", path) == "PATCH"


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/apis/batch/v1/namespaces/ns/jobs", "jobs"),
        ("/apis/batch/v1/namespaces/ns/jobs/j", "jobs"),
        ("/apis/cadre.dev/v1alpha1/namespaces/ns/trainingjobs/t/status", "trainingjobs/status"),
        ("/apis/cadre.dev/v1alpha1/resourcebudgets?limit=500", "resourcebudgets"),
        ("/api/v1/nodes", "nodes"),
        ("/api/v1/namespaces/ns", "namespaces"),
        ("/api/v1/namespaces/ns/services/s", "services"),
        ("/apis/batch/v1/jobs?labelSelector=x", "jobs"),
    ],
)
def test_metric_resource_label(path: str, resource: str) -> None:
    assert resource_of(path) == resource


def test_collection_paths() -> None:
    meta = {"namespace": "ns", "name": "x"}
    assert collection_path({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta}) == (
        "/apis/batch/v1/namespaces/ns/jobs"
    )
    assert collection_path({"apiVersion": "v1", "kind": "Service", "metadata": meta}) == (
        "/api/v1/namespaces/ns/services"
    )
    assert collection_path({"apiVersion": "v1", "kind": "Event", "metadata": meta}) == (
        "/api/v1/namespaces/ns/events"
    )
