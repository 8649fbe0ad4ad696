"""`cadre argocd-health install|remove`: put Cadre's Argo CD health checks into Argo CD's
argocd-cm ConfigMap, and take them out again, touching nothing else in it.

A server-side apply under a field manager of its own (`cadre-argocd-health`): the apply
names only the `resource.customizations.health.cadre.dev_*` keys, so the API server
merges them into the ConfigMap whoever else manages it (Argo CD's install, its operator,
a GitOps repository); `remove` applies an empty set under the same manager, which
deletes exactly the keys that manager owns. The Helm chart runs these as hooks
(`argocd.healthChecks.enabled`): install after `helm install` and `helm upgrade`, remove
before `helm uninstall`.

The ConfigMap must exist (Argo CD is installed): creating argocd-cm would hand Argo CD a
config it never had.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cadre.tools.argocd import HEALTH_KEY_PREFIX, SourceError, health_scripts

if TYPE_CHECKING:  # the CLI builds its parser without the API client's imports
    from cadre.controller.client import ApiClient

FIELD_MANAGER: Final = "cadre-argocd-health"
APPLY_PATCH: Final = "application/apply-patch+yaml"
EXIT_FAILED: Final = 1


def health_keys(folder: Path) -> dict[str, str]:
    """argocd-cm's key of each script in `folder` (`<group>_<Kind>.lua`) -> the script."""
    return {HEALTH_KEY_PREFIX + kind: script for kind, script in health_scripts(folder).items()}


async def apply_keys(
    client: ApiClient, namespace: str, name: str, data: dict[str, str], *, force: bool
) -> dict[str, str]:
    """Server-side apply `data` as the whole of what FIELD_MANAGER owns in the ConfigMap;
    returns the keys the ConfigMap has afterwards, with their values."""
    path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
    if await client.get(path) is None:
        raise LookupError(
            f"ConfigMap {namespace}/{name} not found: install Argo CD first, or name its "
            "namespace (--namespace; the chart's argocd.namespace)"
        )
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    query = f"?fieldManager={FIELD_MANAGER}" + ("&force=true" if force else "")
    _, applied = await client.request("PATCH", path + query, body, content_type=APPLY_PATCH)
    result: dict[str, str] = (applied or {}).get("data") or {}
    return result


def add_argocd_health_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("install", "remove"))
    parser.add_argument(
        "--from",
        dest="folder",
        type=Path,
        default=Path("manifests/argocd/health"),
        help="folder of the <group>_<Kind>.lua health checks (install)",
    )
    parser.add_argument("--namespace", default="argocd", help="Argo CD's namespace")
    parser.add_argument("--configmap", default="argocd-cm", help="Argo CD's ConfigMap")
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster, or $KUBECONFIG")
    parser.add_argument(
        "--force",
        action="store_true",
        help="take the keys over from another field manager (someone set them by hand)",
    )


def run_argocd_health(args: argparse.Namespace) -> int:
    from cadre.controller.client import ApiClient, ApiError, ClientSettings  # noqa: PLC0415

    try:
        data = health_keys(args.folder) if args.action == "install" else {}
    except (SourceError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED

    async def main() -> dict[str, str]:
        client = ApiClient.connect(
            args.kubeconfig, ClientSettings(retries=3), user_agent="cadre-argocd-health"
        )
        try:
            return await apply_keys(client, args.namespace, args.configmap, data, force=args.force)
        finally:
            await client.close()

    try:
        result = asyncio.run(main())
    except LookupError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return EXIT_FAILED
    except ApiError as err:
        hint = " (another field manager owns them: --force takes them)" if err.status == 409 else ""
        print(f"error: {err.status} {err.reason}: {err.message}{hint}", file=sys.stderr)
        return EXIT_FAILED
    ours = sorted(k for k in result if k.startswith(HEALTH_KEY_PREFIX + "cadre.dev_"))
    where = f"{args.namespace}/{args.configmap}"
    if args.action == "install":
        print(f"{where}: {len(ours)} Cadre health check(s): " + json.dumps(ours))
    else:
        print(f"{where}: Cadre's health checks removed ({len(ours)} left under other managers)")
    return 0
