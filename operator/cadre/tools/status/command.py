"""`cadre status`: read, build the view, draw it once or `--watch` it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime

import structlog
from rich.console import Console
from rich.live import Live

from cadre.controller.client import ApiClient
from cadre.tools.status.reading import StatusReadError, Target, connect, load_target, read_cluster
from cadre.tools.status.render import render, to_json
from cadre.tools.status.view import (
    EXIT_NOTHING,
    StatusView,
    Unreadable,
    build_view,
    exit_code,
)


def run_status(args: argparse.Namespace) -> int:
    # The client logs a call it gave up on; the view says it already, on stderr's behalf.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    error_console = Console(stderr=True, no_color=args.no_color, highlight=False)
    try:
        target = load_target(args.kubeconfig, args.context)
    except StatusReadError as err:
        error_console.print(f"cadre status: {err}", markup=False)
        return EXIT_NOTHING
    try:
        return asyncio.run(_run(args, target, error_console))
    except KeyboardInterrupt:
        # --watch ends with Ctrl-C: that is its normal end, not an error.
        return 0
    except Exception as err:  # a message and exit 1, never a traceback
        error_console.print(f"cadre status: unexpected error: {err!r}", markup=False)
        return EXIT_NOTHING


async def _run(args: argparse.Namespace, target: Target, error_console: Console) -> int:
    console = Console(no_color=args.no_color, highlight=False, soft_wrap=False)
    client = connect(target)
    try:
        if not args.watch:
            view = await _view(client, args, target)
            _show(console, args, view)
            return exit_code(view, team=args.team)
        return await _watch(client, console, args, target)
    except StatusReadError as err:
        error_console.print(f"cadre status: {err}", markup=False)
        return EXIT_NOTHING
    finally:
        await client.close()


async def _view(client: ApiClient, args: argparse.Namespace, target: Target) -> StatusView:
    observed = await read_cluster(
        client,
        team=args.team,
        namespaces=args.namespace,
        context_namespace=target.context_namespace,
    )
    return build_view(observed, now=datetime.now(UTC), team=args.team)


def _show(console: Console, args: argparse.Namespace, view: StatusView) -> None:
    if args.output == "json":
        # Plain print: rich would wrap long lines and colour the JSON.
        print(json.dumps(to_json(view), indent=None if args.watch else 2), flush=True)
    else:
        console.print(render(view))


async def _watch(
    client: ApiClient, console: Console, args: argparse.Namespace, target: Target
) -> int:
    if args.output == "json":
        while True:
            _show(console, args, await _view_or_error(client, args, target, console))
            await asyncio.sleep(args.interval)
    view = await _view_or_error(client, args, target, console)
    with Live(render(view), console=console, auto_refresh=False) as live:
        while True:
            await asyncio.sleep(args.interval)
            view = await _view_or_error(client, args, target, console)
            live.update(render(view), refresh=True)


async def _view_or_error(
    client: ApiClient, args: argparse.Namespace, target: Target, console: Console
) -> StatusView:
    """While watching, an API server that stops answering is shown, not fatal."""
    try:
        return await _view(client, args, target)
    except StatusReadError as err:
        return StatusView(
            generated_at=datetime.now(UTC),
            teams=(),
            notes=(f"{err}; trying again in {args.interval:g}s",),
            unreadable=(Unreadable("cluster", None, 0, str(err)),),
        )
