"""The flags of `cadre run` (no Kopf import: the CLI builds its parser without it)."""

from __future__ import annotations

import argparse
import os


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--identity",
        default=None,
        help="this replica's identity in the leader Lease and its user agent (default: "
        "$POD_NAME or host and pid, with a random suffix)",
    )
    parser.add_argument(
        "--enable-fault-injection",
        action="store_true",
        default=bool(os.environ.get("CADRE_FAULT_INJECTION")),
        help=argparse.SUPPRESS,  # tests only: POST /debug/faults on the health port
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="auto: JSON unless stdout is a terminal",
    )
