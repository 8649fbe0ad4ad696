"""How a model's files get into a serving pod.

A pvc:// model is already on a volume: the claim is mounted read-only into the server,
nothing is copied. Every other scheme (s3://, gs://, hf://, oci://, http(s)://) is
downloaded before the server starts, by an init container (KServe's storage-initializer,
or an image that takes the same arguments) into an emptyDir the server then reads.

Pure: plain dicts (the API's wire form) out, nothing read or written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from cadre.core.api.config import ServingSettings
from cadre.core.api.modeldeployment import ModelSource
from cadre.core.workloads.errors import BuildError

MODEL_VOLUME: Final = "model"
STORAGE_INITIALIZER_CONTAINER: Final = "storage-initializer"
MOUNTED_SCHEMES: Final = frozenset({"pvc"})
DOWNLOADED_SCHEMES: Final = frozenset({"s3", "gs", "hf", "oci", "http", "https"})

# The downloader only moves bytes: enough to stream a large file, never a GPU node's worth.
# The pod's effective request is the larger of these and the server's.
_INITIALIZER_RESOURCES: Final = {
    "limits": {"memory": "1Gi"},
    "requests": {"cpu": "100m", "memory": "256Mi"},
}

# The CRD's form of a pvc:// URI: a claim (a DNS label) and an optional path inside it.
_PVC_URI_RE: Final = re.compile(r"^pvc://(?P<claim>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(?P<path>/\S*)?$")
_CLAIM_MAX_LENGTH: Final = 253


class InvalidModelUriError(BuildError):
    """The model URI cannot be mounted or downloaded (the CRD normally stops this)."""

    reason = "InvalidModelURI"

    def __init__(self, uri: str, why: str) -> None:
        self.uri = uri
        super().__init__(f"model uri {uri!r} is not valid: {why}")


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """A parsed model URI."""

    uri: str
    scheme: str
    """s3, gs, hf, pvc, oci, http or https."""
    claim: str | None = None
    """pvc:// only: the PersistentVolumeClaim, in the ModelDeployment's namespace."""
    path: str = ""
    """pvc:// only: the folder inside the claim, relative ("" for the claim's root)."""

    @property
    def mounted(self) -> bool:
        """True when the files are mounted from a volume, False when downloaded."""
        return self.scheme in MOUNTED_SCHEMES


def parse_model_uri(uri: str) -> ModelLocation:
    """The scheme of `uri`, and for pvc://<claim>/<path> the claim and the path.

    Raises `InvalidModelUriError` (a `BuildError`) for an unknown scheme or a pvc:// URI
    that is not a claim name and a relative path without `..`.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or not rest or scheme not in MOUNTED_SCHEMES | DOWNLOADED_SCHEMES:
        known = ", ".join(f"{s}://" for s in sorted(MOUNTED_SCHEMES | DOWNLOADED_SCHEMES))
        raise InvalidModelUriError(uri, f"it must start with one of {known}")
    if scheme != "pvc":
        return ModelLocation(uri=uri, scheme=scheme)
    match = _PVC_URI_RE.match(uri)
    if match is None or len(match["claim"]) > _CLAIM_MAX_LENGTH:
        raise InvalidModelUriError(
            uri,
            "a pvc:// model is pvc://<claim>/<path>, the claim the name of a "
            "PersistentVolumeClaim in this namespace (lowercase letters, digits and '-')",
        )
    # subPath must be relative and must not climb out of the claim.
    segments = [s for s in (match["path"] or "").split("/") if s not in ("", ".")]
    if ".." in segments:
        raise InvalidModelUriError(uri, "the path inside the claim must not contain '..'")
    return ModelLocation(uri=uri, scheme=scheme, claim=match["claim"], path="/".join(segments))


@dataclass(frozen=True, slots=True)
class ModelVolumes:
    """What a pod spec needs to get the model's files to the server."""

    volumes: list[dict[str, Any]]
    """The pod's `model` volume."""
    init_containers: list[dict[str, Any]]
    """The downloader; empty for a mounted (pvc://) model."""
    server_mounts: list[dict[str, Any]]
    """The server container's read-only mount of the model at the mount path."""


def credentials_secret(source: ModelSource, serving: ServingSettings) -> str | None:
    """The Secret whose keys become the downloader's environment: the model's own, else
    the operator config's default; None when neither is set."""
    return source.credentials_secret or serving.credentials_secret


def _storage_initializer(
    source: ModelSource, serving: ServingSettings, mount_path: str
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": STORAGE_INITIALIZER_CONTAINER,
        "image": serving.storage_initializer_image,
        # KServe's storage-initializer takes the source URI and the target folder.
        "args": [source.uri, mount_path],
    }
    secret = credentials_secret(source, serving)
    if secret is not None:
        secret_ref: dict[str, Any] = {"name": secret}
        if source.credentials_secret is None:
            # The operator-wide default may not exist in every namespace, and a public
            # model needs none: without it the download runs anonymously. A Secret the
            # user named must exist, so a typo stops the pod with a clear reason.
            secret_ref["optional"] = True
        container["envFrom"] = [{"secretRef": secret_ref}]
    container["resources"] = {k: dict(v) for k, v in _INITIALIZER_RESOURCES.items()}
    # A failed download's last log lines become its termination message, which the
    # status can show as the reason the model failed to load.
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    container["volumeMounts"] = [{"name": MODEL_VOLUME, "mountPath": mount_path}]
    return container


def model_volumes_and_mounts(source: ModelSource, serving: ServingSettings) -> ModelVolumes:
    """The `model` volume, the downloader (if any) and the server's mount for `source`.

    pvc://<claim>/<path>: the claim, read-only, mounted at `serving.model_mount_path` with
    subPath <path> (none for the claim's root); no init container. Any other scheme: an
    emptyDir filled by the `storage-initializer` init container before the server starts.
    Raises `InvalidModelUriError` for a URI that is neither.
    """
    location = parse_model_uri(source.uri)
    mount_path = serving.model_mount_path
    server_mount: dict[str, Any] = {
        "name": MODEL_VOLUME,
        "mountPath": mount_path,
        "readOnly": True,
    }
    if location.mounted:
        if location.path:
            server_mount["subPath"] = location.path
        volume = {
            "name": MODEL_VOLUME,
            "persistentVolumeClaim": {"claimName": location.claim, "readOnly": True},
        }
        return ModelVolumes(volumes=[volume], init_containers=[], server_mounts=[server_mount])
    return ModelVolumes(
        volumes=[{"name": MODEL_VOLUME, "emptyDir": {}}],
        init_containers=[_storage_initializer(source, serving, mount_path)],
        server_mounts=[server_mount],
    )
