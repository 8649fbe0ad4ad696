#!/usr/bin/env bash
# Builds (or reuses) the local cluster's binaries from Go modules:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok.
# They land in one folder per version set, outside the repo:
#   ${CADRE_CACHE_DIR:-~/.cache/cadre}/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION-kwok-v$KWOK_VERSION/bin
# A second run with the folder complete does nothing and prints that folder.
# Set CADRE_K8S_BIN_DIR to a folder of your own (or KUBEBUILDER_ASSETS for
# envtest's etcd + kube-apiserver + kubectl) to skip building what is found there:
# those binaries are used from where they are (e2e/localcluster looks there first).
# Usage: build-binaries.sh [binary...]   (default: all six)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${CADRE_CACHE_DIR:-$HOME/.cache/cadre}
out="$cache_root/k8s-v${K8S_VERSION}-etcd-v${ETCD_VERSION}-kwok-v${KWOK_VERSION}/bin"
mkdir -p "$out"
all=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)
if [ $# -gt 0 ]; then binaries=("$@"); else binaries=("${all[@]}"); fi
for b in "${binaries[@]}"; do
  case " ${all[*]} " in *" $b "*) ;; *) echo "unknown binary: $b (one of: ${all[*]})" >&2; exit 2;; esac
done

log() { printf '[build-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Found in the user's folders or already in the cache: not built.
provided() {
  local d
  for d in "${CADRE_K8S_BIN_DIR:-}" "${KUBEBUILDER_ASSETS:-}"; do
    if [ -n "$d" ] && [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
  done
  return 1
}
missing_now() {
  missing=()
  for b in "${binaries[@]}"; do
    if p=$(provided "$b"); then continue; fi
    [ -x "$out/$b" ] || missing+=("$b")
  done
}
missing_now
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi

# One build at a time per cache (two test runs starting together share the result).
exec 9>"$out/../.build.lock"
if ! flock -n 9; then
  log "another build holds $out/../.build.lock; waiting for it"
  flock 9
fi
missing_now
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi
for b in "${binaries[@]}"; do
  if p=$(provided "$b"); then log "using $p (not built)"; fi
done
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
# Upstream's version stamps, so /version reports the truth instead of v0.0.0-master.
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k8s_minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${k8s_minor}"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

for b in "${missing[@]}"; do
  t0=$(date +%s)
  case "$b" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      log "building $b v${K8S_VERSION} (the first one also compiles the shared dependencies)"
      (cd "$here/gomod/kubernetes" && go build -tags selinux,notest -trimpath -ldflags "$ldflags" \
        -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b")
      ;;
    etcd)
      log "building etcd v${ETCD_VERSION}"
      (cd "$here/gomod/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/$b.tmp" go.etcd.io/etcd/server/v3)
      ;;
    kwok)
      log "installing kwok v${KWOK_VERSION}"
      GOBIN="$out/.gobin" GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}"
      mv "$out/.gobin/kwok" "$out/$b.tmp" && rmdir "$out/.gobin"
      ;;
  esac
  mv "$out/$b.tmp" "$out/$b"  # only a finished binary gets its final name
  log "$b done in $(( $(date +%s) - t0 ))s"
done
log "all binaries ready in $(( $(date +%s) - start ))s"
echo "$out"
