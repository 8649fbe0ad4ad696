"""manifests/finalizer-release.yaml: the CronJob that bounds how long a deleted pod waits
for an absent operator runs a command the CLI accepts, as the operator, restricted."""

from __future__ import annotations

from pathlib import Path

import yaml

from cadre.tools.cli import build_parser

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "finalizer-release.yaml"


def test_the_cronjob_runs_a_command_the_cli_accepts_under_the_operators_account() -> None:
    cronjob = yaml.safe_load(MANIFEST.read_text())
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "release-finalizers"
    assert args.held_longer_than == "10m" and not args.all and not args.release_uncharged
    assert pod["serviceAccountName"] == "cadre-operator"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
