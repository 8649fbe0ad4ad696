"""What `cadre status` reads, with the user's own kubeconfig and nothing more.

ResourceBudgets are cluster-scoped, TrainingJobs and ModelDeployments namespaced. Each is
first listed cluster-wide; when that is refused (403: a team member usually may list only
their own namespaces), budgets are read by name (the teams named by `--team` and by the
workloads that were read) and workloads in the fallback namespaces: `--namespace`, else
the kubeconfig context's namespace, plus the namespaces of `--team`'s budget. Whatever
stays unreadable is recorded in `Observed.unreadable`, for the view to say so.

Only two failures end the command: a kubeconfig that cannot be used, and an API server
that does not answer or refuses the credentials (401): `StatusReadError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from cadre import __version__
from cadre.controller.client import (
    ApiClient,
    ApiError,
    ApiUnreachableError,
    ClientSettings,
    budget_path,
    load_configuration,
)
from cadre.tools.status.view import Observed, Unreadable, WorkloadKind

GROUP_PATH: Final = "/apis/cadre.dev/v1alpha1"
BUDGETS: Final = f"{GROUP_PATH}/resourcebudgets"
PLURALS: Final[Mapping[WorkloadKind, str]] = {
    "TrainingJob": "trainingjobs",
    "ModelDeployment": "modeldeployments",
}
USER_AGENT: Final = f"cadre-cli/{__version__}"
# A person waits at the terminal: fail within seconds, retry a hiccup once or twice.
SETTINGS: Final = ClientSettings(timeout_seconds=15, connect_timeout_seconds=5, retries=2)


class StatusReadError(Exception):
    """Nothing can be read: unusable kubeconfig, no answer, or credentials refused."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to read from, as the user chose it."""

    configuration: k8s_client.Configuration
    context_namespace: str | None
    """The kubeconfig context's namespace (`default` when the context names none)."""


def load_target(kubeconfig: str | None, context: str | None) -> Target:
    """The API server and credentials of the kubeconfig (`$KUBECONFIG` or ~/.kube/config
    when not given; in a pod without one, its ServiceAccount)."""
    try:
        if kubeconfig is None and context is None and _in_cluster_without_kubeconfig():
            return Target(load_configuration(None), None)
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        contexts, active = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except (k8s_config.ConfigException, OSError, ValueError, TypeError, KeyError) as err:
        raise StatusReadError(f"cannot use the kubeconfig: {err}") from err
    chosen = next((c for c in contexts or [] if c.get("name") == context), None)
    chosen = chosen if context is not None else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return Target(configuration, str(namespace))


def _in_cluster_without_kubeconfig() -> bool:
    default = os.path.expanduser(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION)
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.path.exists(default)


def connect(target: Target) -> ApiClient:
    return ApiClient(target.configuration, SETTINGS, user_agent=USER_AGENT)


async def read_cluster(
    client: ApiClient,
    *,
    team: str | None = None,
    namespaces: Sequence[str] = (),
    context_namespace: str | None = None,
) -> Observed:
    """Everything the user may read of what `cadre status` shows."""
    unreadable: list[Unreadable] = []
    listed, refusal = await _list_or_none(client, BUDGETS, "resourcebudgets", None)
    budgets_complete = listed is not None
    budgets: list[dict[str, Any]] = listed if listed is not None else []
    if refusal is not None:
        unreadable.append(refusal)
        team_budget = await _get_budget(client, team, unreadable) if team else None
        if team_budget is not None:
            budgets.append(team_budget)

    fallback = list(dict.fromkeys(namespaces or ([context_namespace] if context_namespace else [])))
    fallback += [n for n in _namespaces_of(budgets, team) if n not in fallback]

    workloads: dict[WorkloadKind, tuple[Mapping[str, Any], ...]] = {}
    scopes: dict[WorkloadKind, frozenset[str] | None] = {}
    for kind, plural in PLURALS.items():
        items, refusal = await _list_or_none(client, f"{GROUP_PATH}/{plural}", plural, None)
        if refusal is None:
            workloads[kind], scopes[kind] = tuple(items or ()), None
            continue
        unreadable.append(refusal)
        found: list[Mapping[str, Any]] = []
        read: set[str] = set()
        for ns in fallback:
            path = f"{GROUP_PATH}/namespaces/{ns}/{plural}"
            items, refusal = await _list_or_none(client, path, plural, ns)
            if refusal is not None:
                unreadable.append(refusal)
                continue
            found.extend(items or ())
            read.add(ns)
        workloads[kind], scopes[kind] = tuple(found), frozenset(read)

    if not budgets_complete:
        # Budgets by name: those the workloads read are charged to, when the list was refused.
        known = {str((b.get("metadata") or {}).get("name")) for b in budgets}
        named = sorted(
            {
                str(team_name)
                for items in workloads.values()
                for obj in items
                if (team_name := (obj.get("status") or {}).get("team")) and team_name not in known
            }
        )
        for name in named:
            budget = await _get_budget(client, name, unreadable)
            if budget is not None:
                budgets.append(budget)

    return Observed(
        budgets=tuple(budgets),
        budgets_complete=budgets_complete,
        workloads=workloads,
        workload_namespaces=scopes,
        unreadable=tuple(unreadable),
    )


async def _list_or_none(
    client: ApiClient, path: str, what: str, namespace: str | None
) -> tuple[list[dict[str, Any]] | None, Unreadable | None]:
    """The items, or None and why not (a refusal, or an error the view reports)."""
    try:
        return await client.list(path), None
    except ApiError as err:
        _raise_if_fatal(err)
        return None, Unreadable(what, namespace, err.status, _message(err))


async def _get_budget(
    client: ApiClient, name: str, unreadable: list[Unreadable]
) -> dict[str, Any] | None:
    try:
        return await client.get(budget_path(name))
    except ApiError as err:
        _raise_if_fatal(err)
        unreadable.append(Unreadable(f"resourcebudgets/{name}", None, err.status, _message(err)))
        return None


def _raise_if_fatal(err: ApiError) -> None:
    if isinstance(err, ApiUnreachableError):
        raise StatusReadError(f"the API server did not answer ({err.kind})") from err
    if err.status == 401:
        raise StatusReadError("the API server refused the credentials (401 Unauthorized)") from err


def _message(err: ApiError) -> str:
    return err.message.splitlines()[0][:300] if err.message else err.reason


def _namespaces_of(budgets: Sequence[Mapping[str, Any]], team: str | None) -> list[str]:
    """The namespaces of `team`'s budget: with `--team`, its workloads are worth asking for
    namespace by namespace."""
    if team is None:
        return []
    for budget in budgets:
        if (budget.get("metadata") or {}).get("name") != team:
            continue
        status, spec = budget.get("status") or {}, budget.get("spec") or {}
        listed = status.get("namespaces") or spec.get("namespaces") or []
        return [n for n in listed if isinstance(n, str)]
    return []
