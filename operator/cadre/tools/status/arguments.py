"""The flags of `cadre status` (no imports beyond argparse: `cadre --help` stays fast)."""

from __future__ import annotations

import argparse


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0.5 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("the interval must be between 0.5 and 3600 seconds")
    return seconds


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", metavar="NAME", help="show this team (ResourceBudget) only")
    parser.add_argument(
        "--output",
        "-o",
        choices=("table", "json"),
        default="table",
        help="table (default) or json (stable keys, see docs/cli.md)",
    )
    parser.add_argument(
        "--watch",
        "-w",
        action="store_true",
        help="refresh until interrupted (json: one document per line per refresh)",
    )
    parser.add_argument(
        "--interval",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds between refreshes with --watch (default 5)",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="where to read workloads when you may not list them cluster-wide (repeatable; "
        "default: the context's namespace)",
    )
    parser.add_argument(
        "--no-color", action="store_true", help="plain text, no colours (also: $NO_COLOR)"
    )
