"""The `cadre` command: generate CRDs, validate manifests, show teams' status, run the
operator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cadre.controller.runtime.args import add_release_arguments, add_run_arguments
from cadre.tools.argocd_install import add_argocd_health_arguments
from cadre.tools.crdgen import render_crds
from cadre.tools.status.arguments import add_status_arguments
from cadre.tools.validation import validate_stream
from cadre.tools.validation.reading import SourceError, read_source


def _crds(args: argparse.Namespace) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_crds().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    checked = 0
    for file_name in args.files:
        shown = "standard input" if file_name == "-" else file_name
        try:
            text = read_source(file_name)
        except SourceError as err:
            print(f"{shown}: {err}", file=sys.stderr)
            failed += 1
            continue
        for result in validate_stream(text):
            label = f"{shown}[{result.index}]"
            if result.skipped:
                if args.verbose:
                    print(f"{label}: skipped ({result.skipped})")
                continue
            checked += 1
            what = " ".join(p for p in (result.kind, result.name) if p)
            if result.ok:
                if args.verbose:
                    print(f"{label}: {what or 'document'}: ok")
                continue
            failed += 1
            for error in result.errors:
                # file[index]: Kind name: path: message, without the parts it has not.
                print(
                    ": ".join(p for p in (label, what, error.path, error.message) if p),
                    file=sys.stderr,
                )
    summary = f"{checked} Cadre document(s) checked, {failed} with errors"
    print(summary, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


def _run(args: argparse.Namespace) -> int:
    # Imported here: `cadre validate` and `cadre crds` must not need Kopf or a cluster.
    from cadre.controller.runtime.main import run  # noqa: PLC0415

    return run(args)


def _status(args: argparse.Namespace) -> int:
    # Imported here: `cadre validate` and `cadre crds` must not need rich or a cluster.
    from cadre.tools.status.command import run_status  # noqa: PLC0415

    return run_status(args)


def _argocd_health(args: argparse.Namespace) -> int:
    from cadre.tools.argocd_install import run_argocd_health  # noqa: PLC0415

    return run_argocd_health(args)


def _release(args: argparse.Namespace) -> int:
    from cadre.controller.runtime.release import run_release  # noqa: PLC0415

    return run_release(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cadre", description="Cadre: ML training, serving, quotas and budgets on Kubernetes."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument("--output", "-o", default="crds", help="folder to write into")
    crds.set_defaults(handler=_crds)

    validate = commands.add_parser(
        "validate",
        help="check manifests offline, as the API server would",
        description="Check TrainingJob, ModelDeployment, ResourceBudget and OperatorConfig "
        "documents in YAML files ('-' reads standard input). Other kinds are skipped. "
        "Exit status 1 when any document has an error.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--verbose", "-v", action="store_true", help="also list what passed")
    validate.set_defaults(handler=_validate)

    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Run the Cadre operator against the cluster of a kubeconfig, or in-cluster.",
    )
    add_run_arguments(run)
    run.set_defaults(handler=_run)

    status = commands.add_parser(
        "status",
        help="teams, quota by flavour, borrowed GPUs, spend, queues",
        description="One view of every team: GPU quota and use by flavour, GPUs borrowed "
        "from the cohort, spend against the limit with its forecast, the queue and its "
        "oldest waiting job with the reason. Reads with your kubeconfig, only what you may "
        "read, and says what it could not. Exit status: 0 all read, 3 shown but something "
        "could not be read, 1 nothing could be read (or no such --team), 2 bad arguments. "
        "See docs/cli.md.",
    )
    add_status_arguments(status)
    status.set_defaults(handler=_status)

    argocd_health = commands.add_parser(
        "argocd-health",
        help="install or remove Cadre's health checks in Argo CD's argocd-cm",
        description="Server-side apply Cadre's Argo CD health checks (Lua) into the "
        "argocd-cm ConfigMap under the field manager cadre-argocd-health, or remove "
        "exactly those keys; nothing else in the ConfigMap changes. See docs/argocd.md.",
    )
    add_argocd_health_arguments(argocd_health)
    argocd_health.set_defaults(handler=_argocd_health)

    release = commands.add_parser(
        "release-finalizers",
        help="charge and release pods held by Cadre's accounting finalizer (uninstall, or "
        "while no operator runs)",
        description="Charge pods held by Cadre's accounting finalizer to their teams, then "
        "remove the finalizer. Takes the operator's leader Lease first: while an operator "
        "leads, nothing is done (it releases pods itself). Exit 3: some pods stay held.",
    )
    add_release_arguments(release)
    release.set_defaults(handler=_release)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
