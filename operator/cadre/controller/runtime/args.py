"""The flags of `cadre run` and `cadre release-finalizers` (no Kopf import: the CLI builds
its parser without it)."""

from __future__ import annotations

import argparse
import os


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """What every command that talks to the cluster takes: config, kubeconfig, identity,
    log format."""
    parser.add_argument(
        "--config",
        default=os.environ.get("CADRE_CONFIG"),
        help="the operator config file (OperatorConfig YAML); default: $CADRE_CONFIG",
    )
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig to use; default: in-cluster when run in a pod (token and CA from "
        "$CADRE_SERVICEACCOUNT_DIR, default /var/run/secrets/kubernetes.io/serviceaccount), "
        "else $KUBECONFIG or ~/.kube/config",
    )
    parser.add_argument(
        "--identity",
        default=None,
        help="this replica's identity in the leader Lease and its user agent (default: "
        "$POD_NAME or host and pid, with a random suffix)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="auto: JSON unless stdout is a terminal",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument(
        "--bind-address",
        default="0.0.0.0",
        help="address of the metrics and health endpoints (default 0.0.0.0)",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="override the config's metricsPort"
    )
    parser.add_argument(
        "--health-port", type=int, default=None, help="override the config's healthPort"
    )
    parser.add_argument(
        "--enable-fault-injection",
        action="store_true",
        default=bool(os.environ.get("CADRE_FAULT_INJECTION")),
        help=argparse.SUPPRESS,  # tests only: POST /debug/faults on the health port
    )


def add_release_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--all",
        action="store_true",
        help="every pod holding the finalizer, running or not (an uninstall: running pods "
        "are charged up to now and then run uncharged)",
    )
    which.add_argument(
        "--held-longer-than",
        metavar="DURATION",
        help="pods deleted longer ago than this (e.g. 10m): the bound on how long a pod "
        "waits for an absent operator",
    )
    parser.add_argument(
        "--release-uncharged",
        action="store_true",
        help="also release pods whose charge cannot be recorded (their cost is lost)",
    )
    parser.add_argument(
        "--lease-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to try for the leader Lease (default: two lease durations)",
    )
