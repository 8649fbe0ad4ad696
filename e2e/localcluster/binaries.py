"""Where the cluster's binaries come from, and building them when they are missing.

Each binary is looked up, in order, in:
  1. $CADRE_K8S_BIN_DIR (a folder of your own binaries),
  2. $KUBEBUILDER_ASSETS (controller-runtime envtest's etcd, kube-apiserver, kubectl),
  3. the versioned cache that e2e/cluster/build-binaries.sh fills from Go modules:
     ${CADRE_CACHE_DIR:-~/.cache/cadre}/k8s-v<K8S>-etcd-v<ETCD>-kwok-v<KWOK>/bin.
build-binaries.sh honours the same variables, so it only builds what is not found.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CLUSTER_DIR = Path(__file__).resolve().parent.parent / "cluster"
BUILD_SCRIPT = CLUSTER_DIR / "build-binaries.sh"
VERSIONS_FILE = CLUSTER_DIR / "versions.env"

APISERVER_BINARIES = ("etcd", "kube-apiserver")
CLUSTER_BINARIES = (*APISERVER_BINARIES, "kube-controller-manager", "kube-scheduler", "kwok")
ALL_BINARIES = (*CLUSTER_BINARIES, "kubectl")
HELM_K8S_MINOR = "37"  # helm v3.22.0 builds on k8s.io/client-go v0.37


class MissingBinariesError(RuntimeError):
    """The binaries are missing and could not be built."""


def versions() -> dict[str, str]:
    """K8S_VERSION, ETCD_VERSION, KWOK_VERSION from e2e/cluster/versions.env."""
    out: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip("\"'")
    return out


def cache_bin_dir() -> Path:
    v = versions()
    root = Path(os.environ.get("CADRE_CACHE_DIR") or Path.home() / ".cache" / "cadre")
    name = f"k8s-v{v['K8S_VERSION']}-etcd-v{v['ETCD_VERSION']}-kwok-v{v['KWOK_VERSION']}"
    return root / name / "bin"


def search_dirs() -> list[tuple[str, Path]]:
    dirs: list[tuple[str, Path]] = []
    for var in ("CADRE_K8S_BIN_DIR", "KUBEBUILDER_ASSETS"):
        value = os.environ.get(var)
        if value:
            dirs.append((var, Path(value).expanduser()))
    dirs.append(("cache", cache_bin_dir()))
    return dirs


@dataclass(frozen=True)
class Binary:
    name: str
    path: Path
    source: str  # CADRE_K8S_BIN_DIR, KUBEBUILDER_ASSETS or cache

    @property
    def built_here(self) -> bool:
        """True when it comes from this project's versioned build (versions.env holds)."""
        return self.source == "cache"


def find(names: tuple[str, ...] | list[str] = ALL_BINARIES) -> dict[str, Binary]:
    """The binaries found, by name; missing ones are absent from the result."""
    found: dict[str, Binary] = {}
    for name in names:
        for source, folder in search_dirs():
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found[name] = Binary(name, candidate, source)
                break
    return found


def ensure(
    names: tuple[str, ...] | list[str] = ALL_BINARIES,
    build: bool = True,
    log: object = None,
) -> dict[str, Binary]:
    """Finds the binaries, running build-binaries.sh for the missing ones if `build`.

    The build prints progress on stderr (to `log`, a file object, default sys.stderr);
    a cold build of everything takes tens of minutes on 2 cores (see docs/local-cluster.md).
    """
    found = find(names)
    missing = [n for n in names if n not in found]
    if not missing:
        return found
    if not build:
        raise MissingBinariesError(
            f"missing {', '.join(missing)}; looked in "
            + ", ".join(f"{src}={d}" for src, d in search_dirs())
            + f"; build them with {BUILD_SCRIPT}"
        )
    stream = log if log is not None else sys.stderr
    proc = subprocess.run(
        [str(BUILD_SCRIPT), *missing],
        stdout=subprocess.PIPE,
        stderr=stream,  # type: ignore[arg-type]
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise MissingBinariesError(
            f"{BUILD_SCRIPT} {' '.join(missing)} failed with exit code {proc.returncode}"
            " (its progress and errors are on stderr above)"
        )
    found = find(names)
    still = [n for n in names if n not in found]
    if still:
        raise MissingBinariesError(f"{BUILD_SCRIPT} ran but {', '.join(still)} still missing")
    return found


def gateway_api_crds(timeout: float = 300) -> Path:
    """The folder of the Gateway API's standard CRDs (HTTPRoute and the rest), from its Go
    module at GATEWAY_API_VERSION: `go mod download` fetches it into Go's module cache
    from the module proxy, once. Raises MissingBinariesError when it cannot be had."""
    version = versions()["GATEWAY_API_VERSION"]
    with tempfile.TemporaryDirectory() as scratch:
        try:
            proc = subprocess.run(
                ["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@v{version}"],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={**os.environ, "GOFLAGS": "-mod=mod"},
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise MissingBinariesError(f"go mod download of the Gateway API failed: {err}") from err
    try:
        folder = Path(json.loads(proc.stdout)["Dir"]) / "config" / "crd" / "standard"
    except (ValueError, KeyError) as err:
        raise MissingBinariesError(
            f"go mod download of the Gateway API failed: {proc.stderr.strip()[-500:]}"
        ) from err
    if not (folder / "gateway.networking.k8s.io_httproutes.yaml").is_file():
        raise MissingBinariesError(f"no HTTPRoute CRD in {folder}")
    return folder


def helm(major: int = 3, timeout: float = 900) -> Path:
    """The `helm` binary at HELM_VERSION (major 3) or HELM4_VERSION (major 4), built once
    from its Go module (helm.sh/helm/v3 or /v4, from the module proxy) into
    ${CADRE_CACHE_DIR:-~/.cache/cadre}/helm-v<version>/helm; $CADRE_HELM (or
    $CADRE_HELM4) names one of your own instead. Raises MissingBinariesError when it cannot
    be had."""
    version = versions()["HELM_VERSION" if major == 3 else "HELM4_VERSION"]
    given = os.environ.get("CADRE_HELM" if major == 3 else "CADRE_HELM4")
    if given:
        return Path(given)
    module = f"helm.sh/helm/v{major}"
    # As Helm's Makefile stamps a release: its version, and for Helm 3 the Kubernetes
    # version of its client modules (1.37 for v3.22: the default of `helm template` and
    # lint's deprecation checks; Helm 4 reads it from its build information).
    ldflags = f"-s -w -X {module}/internal/version.version=v{version}"
    if major == 3:
        ldflags += f" -X {module}/pkg/lint/rules.k8sVersionMinor={HELM_K8S_MINOR}"
        ldflags += f" -X {module}/pkg/chartutil.k8sVersionMinor={HELM_K8S_MINOR}"
    folder = cache_bin_dir().parent.parent / f"helm-v{version}"
    binary = folder / "helm"
    if binary.is_file():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    # One build at a time (two test sessions starting together share the result).
    with (folder / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        print(f"building helm v{version} from its Go module (once)", file=sys.stderr)
        try:
            proc = subprocess.run(
                [
                    "go",
                    "install",
                    "-trimpath",
                    "-ldflags",
                    ldflags,
                    f"{module}/cmd/helm@v{version}",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={
                    **os.environ,
                    "GOBIN": str(folder / "build"),
                    "CGO_ENABLED": "0",
                    "GOFLAGS": "-buildvcs=false",
                },
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise MissingBinariesError(f"building helm failed: {err}") from err
        built = folder / "build" / "helm"
        if proc.returncode != 0 or not built.is_file():
            raise MissingBinariesError(f"building helm failed: {proc.stderr.strip()[-800:]}")
        built.rename(binary)  # atomic: a reader sees the whole binary or none
    return binary
