"""A small in-memory stand-in for the API client, for unit tests of the controller's
writers: objects by path, resourceVersions that move on every write, status replacements
with a resourceVersion precondition (409), JSON patches with `test` (422), deletes with a
UID precondition, one-page lists. The real thing is the API server in tests/integration
and e2e/."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

from cadre.controller.client import ApiError, collection_path
from cadre.core.training.lifecycle import status_patch


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.fail: dict[str, list[int]] = {}
        """path -> statuses the next writes of that path fail with (in order)."""
        self.fail_message = "{}"
        self.on_create: list[Any] = []
        """Called with each object's path after it is created, before the answer: what
        a watch may deliver before the creator handles its answer."""
        self._rv = 100

    def put(self, path: str, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        self.objects[path] = obj

    def _object_path(self, path: str) -> str:
        return path.removesuffix("/status")

    def _check_failure(self, method: str, path: str) -> None:
        queued = self.fail.get(path)
        if queued:
            raise ApiError(method, path, queued.pop(0), b"{}")

    def _store(self, path: str, obj: dict[str, Any], patch: Any) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self.objects[self._object_path(path)] = obj
        self.writes.append((path, patch))
        return copy.deepcopy(obj)

    async def get(self, path: str) -> dict[str, Any] | None:
        obj = self.objects.get(path)
        return copy.deepcopy(obj) if obj is not None else None

    async def versioned_pages(
        self, path: str, label_selector: str | None = None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """A cluster-wide list of `path` (`/apis/<group>/<version>/<plural>`), one page,
        filtered by a selector of one `key` or `key=value`."""
        prefix, plural = path.rsplit("/", 1)
        key, _, value = (label_selector or "").partition("=")
        page = []
        for object_path, obj in sorted(self.objects.items()):
            parts = object_path.removeprefix(prefix + "/").split("/")
            namespaced = len(parts) == 4 and parts[0] == "namespaces" and parts[2] == plural
            cluster_wide = len(parts) == 2 and parts[0] == plural
            if not object_path.startswith(prefix + "/") or not (namespaced or cluster_wide):
                continue
            labels = obj.get("metadata", {}).get("labels") or {}
            if key and (key not in labels or (value and labels[key] != value)):
                continue
            page.append(copy.deepcopy(obj))
        yield page, str(self._rv)

    async def create(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if obj["kind"] == "Event":
            self.events.append(copy.deepcopy(obj))
            return obj, True
        queued = self.fail.get(collection_path(obj))
        if queued:
            status, message = queued.pop(0), self.fail_message
            raise ApiError("POST", collection_path(obj), status, message)
        path = f"{collection_path(obj)}/{obj['metadata']['name']}"
        if path in self.objects:
            return copy.deepcopy(self.objects[path]), False
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"uid-{self._rv + 1}")  # the server names it
        self.put(path, obj)
        self.writes.append((path, "create"))
        answer = copy.deepcopy(self.objects[path])
        for hook in self.on_create:
            hook(path)
        return answer, True

    async def replace_status(
        self, path: str, status: dict[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        """As the server's status subresource: the status replaced, the rest kept. The
        write is recorded as what it changed (a merge patch), which tests compare."""
        self._check_failure("PUT", f"{path}/status")
        current = self.objects.get(path)
        if current is None:
            raise ApiError("PUT", f"{path}/status", 404, b"{}")
        if current["metadata"]["resourceVersion"] != resource_version:
            raise ApiError("PUT", f"{path}/status", 409, b'{"reason": "Conflict"}')
        updated = {**copy.deepcopy(current), "status": copy.deepcopy(status)}
        change = status_patch(current.get("status"), status) or {}
        return self._store(f"{path}/status", updated, {"status": copy.deepcopy(change)})

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        self._check_failure("PATCH", path)
        current = self.objects.get(path)
        if current is None:
            raise ApiError("PATCH", path, 404, b"{}")
        obj = copy.deepcopy(current)
        for op in operations:
            *parents, leaf = _pointer(op["path"])
            node: Any = obj
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node.get(part, {})
            if op["op"] == "test":
                value = node[int(leaf)] if isinstance(node, list) else node.get(leaf)
                if value != op["value"]:
                    raise ApiError("PATCH", path, 422, b'{"reason": "Invalid"}')
            elif op["op"] in ("add", "replace"):
                node[leaf] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del node[int(leaf) if isinstance(node, list) else leaf]
        return self._store(path, obj, operations)

    async def delete(
        self, path: str, *, uid: str | None = None, propagation: str = "Background"
    ) -> bool:
        self._check_failure("DELETE", path)
        current = self.objects.get(path)
        if current is None:
            return False
        if uid is not None and current["metadata"].get("uid") != uid:
            return False
        del self.objects[path]
        self.writes.append((path, "delete"))
        return True
