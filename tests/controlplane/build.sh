#!/usr/bin/env bash
# Build the binaries of the test control plane from Go modules:
#   kube-apiserver, kube-controller-manager, kubectl  (k8s.io/kubernetes, ./go.mod)
#   etcd                                              (go.etcd.io/etcd/server/v3, ./etcd/go.mod)
#
# The binaries go to a cache dir outside the repo:
#   ${GOREPORTS_CACHE:-$HOME/.cache/go-reports}/controlplane/<k8s-version>/bin
# and are rebuilt only when missing or when go.mod/go.sum changed (stamp file).
# Needs only Go (>= the `go` line of go.mod) and the Go module proxy.
# The last line printed on stdout is the bin dir; progress goes to stderr.
#
# Environment:
#   GOREPORTS_CACHE        cache root (default ~/.cache/go-reports)
#   GOREPORTS_BUILD_JOBS   go build -p (default: number of CPUs, at most 4)
#   GOREPORTS_REBUILD=1    rebuild even if the stamp matches
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[controlplane/build] %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { log "error: 'go' not found in PATH"; exit 1; }

k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/go.mod")"
[[ -n "$k8s_version" ]] || k8s_version="$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$here/go.mod")"
[[ "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { log "error: cannot read k8s.io/kubernetes version from $here/go.mod"; exit 1; }
major="${BASH_REMATCH[1]}"
minor="${BASH_REMATCH[2]}"

cache_root="${GOREPORTS_CACHE:-$HOME/.cache/go-reports}"
ver_dir="$cache_root/controlplane/$k8s_version"
bin_dir="$ver_dir/bin"
binaries=(kube-apiserver kube-controller-manager kubectl etcd)

stamp_value() {
    cat "$here/go.mod" "$here/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum" "${BASH_SOURCE[0]}" \
        | sha256sum | awk '{print $1}'
}

is_built() {
    local b
    for b in "${binaries[@]}"; do
        [[ -x "$bin_dir/$b" ]] || return 1
    done
    [[ -f "$bin_dir/.stamp" && "$(cat "$bin_dir/.stamp")" == "$(stamp_value)" ]]
}

mkdir -p "$ver_dir"

# Serialise concurrent builds (e.g. several pytest workers).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ver_dir/.lock"
    flock 9
fi

if [[ "${GOREPORTS_REBUILD:-0}" != "1" ]] && is_built; then
    log "up to date: $bin_dir"
    echo "$bin_dir"
    exit 0
fi

ncpu="$(nproc 2>/dev/null || echo 2)"
jobs="${GOREPORTS_BUILD_JOBS:-$(( ncpu < 4 ? ncpu : 4 ))}"

# -mod=readonly: go.mod/go.sum in the repo are complete and are not rewritten.
# -buildvcs=false: the main module lives in this repo; no VCS stamping needed.
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

build_date="1970-01-01T00:00:00Z"
xflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    xflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    xflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

tmp_bin="$ver_dir/bin.tmp.$$"
rm -rf "$tmp_bin"
mkdir -p "$tmp_bin"
trap 'rm -rf "$tmp_bin"' EXIT

start=$(date +%s)
log "building kube-apiserver, kube-controller-manager, kubectl $k8s_version (go build -p $jobs; a cold build takes a long time)"
(
    cd "$here"
    go build -p "$jobs" -trimpath -ldflags="-s -w$xflags" -o "$tmp_bin/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kubectl
)

etcd_version="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")"
log "building etcd ${etcd_version:-?}"
(
    cd "$here/etcd"
    go build -p "$jobs" -trimpath -ldflags="-s -w" -o "$tmp_bin/etcd" go.etcd.io/etcd/server/v3
)

mkdir -p "$bin_dir"
for b in "${binaries[@]}"; do
    mv -f "$tmp_bin/$b" "$bin_dir/$b"
done
stamp_value > "$bin_dir/.stamp"
log "built in $(( $(date +%s) - start ))s: $bin_dir"
echo "$bin_dir"
