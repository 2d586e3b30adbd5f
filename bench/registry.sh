#!/usr/bin/env bash
# Registry benchmark: factory push and pull of a copy-heavy image (~400 MB: busybox, a layer of
# small files, a layer with one big file) to a local docker-registry, side by side with
# `skopeo copy` of the same image in the same run.
#
#   bash bench/registry.sh                       # as root; FACTORY defaults to build/factory
#   RUNS=5 bash bench/registry.sh
#   SMALL_FILES=500 SMALL_MB=10 BIG_MB=20 RUNS=1 bash bench/registry.sh   # a quick smoke run
#   PUSH_FLAGS="--chunk-size 1GiB" bash bench/registry.sh   # extra flags of the measured push
#
# Each measured push goes to a fresh registry (new storage: nothing to skip or mount) with a
# fresh skopeo blob-info cache (HOME); each pull into a fresh store / layout. Medians of RUNS.
#   factory push      factory push IMAGE docker://…   (--tls-verify=false: plain HTTP)
#   skopeo push       skopeo copy --preserve-digests oci:STORE:IMAGE docker://…
#   factory pull      factory pull docker://… into an empty store
#   skopeo pull       skopeo copy docker://… oci:DIR
#   no-op push        factory push of the same image again (every blob and the tag present)
# Peak RSS of factory from /usr/bin/time -f %M. Everything lives under a tmpfs (root) or
# /dev/shm, removed at the end.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-3}
SMALL_FILES=${SMALL_FILES:-5000}
SMALL_MB=${SMALL_MB:-100}
BIG_MB=${BIG_MB:-300}
TIMEOUT=${TIMEOUT:-600}
read -r -a push_flags <<<"${PUSH_FLAGS:-}"

[[ -x $FACTORY ]] || { echo "registry: no factory binary at $FACTORY" >&2; exit 1; }
for tool in python3 skopeo docker-registry curl /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "registry: missing $tool (scripts/setup.sh)" >&2; exit 1; }
done

if [[ $(id -u) -eq 0 ]]; then
    WORK=$(mktemp -d /tmp/factory-bench.XXXXXX)
    mount -t tmpfs -o size=6g,mode=0755 tmpfs "$WORK"
    cleanup() { cd /; stop_registry; umount -l "$WORK" 2>/dev/null || true; rmdir "$WORK" 2>/dev/null || true; }
else
    WORK=$(mktemp -d /dev/shm/factory-bench.XXXXXX)
    cleanup() { cd /; stop_registry; rm -rf "$WORK"; }
fi
REG_PID=
stop_registry() {
    if [[ -n $REG_PID ]]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    REG_PID=
}
trap cleanup EXIT
cd "$WORK"

# start_registry: a fresh docker-registry (new storage) on a free port; sets R.
start_registry() {
    stop_registry
    local port dir i
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    dir=$WORK/registry-$port
    mkdir -p "$dir"
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$dir" "$port" >"$dir.yml"
    docker-registry serve "$dir.yml" >"$dir.log" 2>&1 &
    REG_PID=$!
    R=127.0.0.1:$port
    for i in $(seq 1 100); do
        curl -fsS "http://$R/v2/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "registry: docker-registry did not start" >&2
    exit 1
}

timed() { # timed OUTFILE CMD...: appends "seconds maxrss_kb"
    local out=$1
    shift
    /usr/bin/time -o "$WORK/time.last" -f '%e %M' timeout "$TIMEOUT" "$@" >"$WORK/cmd.log" 2>&1 || {
        echo "registry: command failed: $*" >&2
        tail -n 20 "$WORK/cmd.log" >&2
        exit 1
    }
    tail -n 1 "$WORK/time.last" >>"$out"
}
med() { cut -d' ' -f1 "$1" | median 2; }
ms() { cut -d' ' -f1 "$1" | median 3 | awk '{ printf "%d", $1 * 1000 }'; }
rss() { cut -d' ' -f2 "$1" | sort -n | tail -n 1 | awk '{ printf "%d", $1 / 1024 }'; }

log "generating $SMALL_FILES files (~$SMALL_MB MB) + one $BIG_MB MB file"
python3 "$here/bench/gen_tree.py" "$WORK/tree" "$SMALL_FILES" "$SMALL_MB" "$BIG_MB"
bb=$(dirname "$(readlink -f /bin/busybox)")
cat >"$WORK/tree/bench.toml" <<EOF
[image]
name = "bench-registry"
[contexts]
busybox = "$bb"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
copy = [{ src = "src", dest = "/data/src/" }]
[[step]]
copy = [{ src = "big.bin", dest = "/data/big.bin" }]
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
copy = [{ src = "src", dest = "/data/src/" }]
[[step]]
copy = [{ src = "big.bin", dest = "/data/big.bin" }]
EOF
printf 'bench.toml\n' >"$WORK/tree/.factoryignore"
store=$WORK/store
log "building the image"
"$FACTORY" build --progress plain --cache "$store" "$WORK/tree/bench.toml" >"$WORK/build.log" 2>&1
digest=$(tail -n 1 "$WORK/build.log" | awk '{ print $2 }')
image_mb=$(du -sm "$store/blobs" | cut -f1)
log "image $digest, $image_mb MB of blobs"

export HOME=$WORK/home
for i in $(seq 0 "$RUNS"); do # run 0: unmeasured warm-up
    suffix=$([[ $i -eq 0 ]] && echo warm || echo "")
    log "run $i"
    start_registry
    timed "$WORK/fpush$suffix" "$FACTORY" push --cache "$store" --tls-verify=false --progress plain \
        "${push_flags[@]}" bench-registry:latest "$R/bench/f:1"
    timed "$WORK/noop$suffix" "$FACTORY" push --cache "$store" --tls-verify=false --progress plain \
        bench-registry:latest "$R/bench/f:1"
    timed "$WORK/fpull$suffix" "$FACTORY" pull --cache "$WORK/pull-$i" --tls-verify=false \
        --progress plain "$R/bench/f:1"
    [[ $(grep -c "$digest" "$WORK/cmd.log") -ge 1 ]] || { echo "registry: pulled digest differs" >&2; exit 1; }
    rm -rf "$WORK/pull-$i" "$HOME"
    start_registry
    mkdir -p "$HOME"
    timed "$WORK/spush$suffix" skopeo copy -q --preserve-digests --dest-tls-verify=false \
        "oci:$store:bench-registry:latest" "docker://$R/bench/s:1"
    timed "$WORK/spull$suffix" skopeo copy -q --preserve-digests --src-tls-verify=false \
        "docker://$R/bench/s:1" "oci:$WORK/skopeo-pull-$i:x"
    rm -rf "$WORK/skopeo-pull-$i" "$HOME"
done

fp=$(med "$WORK/fpush") sp=$(med "$WORK/spush") fl=$(med "$WORK/fpull") sl=$(med "$WORK/spull")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<EOT

registry benchmark: $image_mb MB image, $RUNS runs (medians), $(nproc) cores
| operation  | factory | skopeo copy | factory / skopeo | factory peak RSS |
|------------|---------|-------------|------------------|------------------|
| push       | ${fp} s | ${sp} s | $(ratio "$fp" "$sp") | $(rss "$WORK/fpush") MiB |
| pull       | ${fl} s | ${sl} s | $(ratio "$fl" "$sl") | $(rss "$WORK/fpull") MiB |
| no-op push | $(ms "$WORK/noop") ms | | | $(rss "$WORK/noop") MiB |
EOT
