"""The `cadre` command: generate CRDs, validate manifests, run the operator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cadre.controller.runtime.args import add_run_arguments
from cadre.tools.crdgen import render_crds
from cadre.tools.validation import validate_stream


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
        path = Path(file_name)
        try:
            text = sys.stdin.read() if file_name == "-" else path.read_text(encoding="utf-8")
        except OSError as err:
            print(f"{file_name}: cannot read: {err.strerror}", file=sys.stderr)
            failed += 1
            continue
        for result in validate_stream(text):
            label = f"{file_name}[{result.index}]"
            if result.skipped:
                if args.verbose:
                    print(f"{label}: skipped ({result.skipped})")
                continue
            checked += 1
            what = " ".join(p for p in (result.kind, result.name) if p) or "document"
            if result.ok:
                if args.verbose:
                    print(f"{label}: {what}: ok")
                continue
            failed += 1
            for error in result.errors:
                where = error.path or "(document)"
                print(f"{label}: {what}: {where}: {error.message}", file=sys.stderr)
    summary = f"{checked} Cadre document(s) checked, {failed} with errors"
    print(summary, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


def _run(args: argparse.Namespace) -> int:
    # Imported here: `cadre validate` and `cadre crds` must not need Kopf or a cluster.
    from cadre.controller.runtime.main import run  # noqa: PLC0415

    return run(args)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
