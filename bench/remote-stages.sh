#!/usr/bin/env bash
# A fresh CI agent building a multi-stage image whose every step is in the registry cache:
# a `builder` stage on Debian bookworm with gcc that compiles main.c in a RUN step, and a
# scratch `final` stage that copies the binary out. factory (--cache-from a local
# docker-registry) against podman build --layers --cache-from the same registry, FROM the very
# base factory bootstrapped (pushed there), each run in a new store / podman root.
#
#   bash bench/remote-stages.sh              # as root; FACTORY defaults to build/factory
#   RUNS=3 bash bench/remote-stages.sh
#
# Rows (medians of RUNS, seconds; MB downloaded from the registry, counted by factory's stats
# and by the registry's blob bytes podman fetched):
#   fresh agent            every step a hit: factory gets the image's layer and the listings of
#                          the builder's layers (docs/cache.md "Remote cache"); podman pulls the
#                          base and the builder's cached layers
#   fresh, no listings     factory from a copy of the cache without listings: the builder's
#                          layers are downloaded and read, as before listings were shared
# Needs the Debian mirror (mmdebstrap, once). Bounded: each command at most TIMEOUT s (900).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-5}
TIMEOUT=${TIMEOUT:-900}
[[ $(id -u) -eq 0 ]] || { echo "remote-stages: run as root (mmdebstrap, rootful podman)" >&2; exit 1; }
[[ -x $FACTORY ]] || { echo "remote-stages: no factory binary at $FACTORY" >&2; exit 1; }
for tool in podman runc mmdebstrap docker-registry curl jq python3; do
    command -v "$tool" >/dev/null || { echo "remote-stages: missing $tool (scripts/setup.sh)" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/factory-bench-stages.XXXXXX")
REG_PID=
cleanup() {
    [[ -n $REG_PID ]] && { kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; }
    for root in "$WORK"/pod.*; do
        [[ -d $root ]] && podman --root "$root/root" --runroot "$root/run" system reset -f >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

bench_registry

mkdir -p "$WORK/app"
cat >"$WORK/app/main.c" <<'EOF'
#include <stdio.h>
int main(void) { puts("hello from the builder stage"); return 0; }
EOF
cat >"$WORK/app/hello.toml" <<'EOF'
[image]
name = "hello-c"
stage = "final"

[stage.builder]
base = { debian = { suite = "bookworm", variant = "minbase", include = ["gcc", "libc6-dev"] } }
[[stage.builder.step]]
copy = { src = "main.c", dest = "/src/main.c" }
[[stage.builder.step]]
run = "mkdir -p /out && gcc -O2 -static -o /out/hello /src/main.c"

[stage.final]
base = "scratch"
[[stage.final.step]]
copy = { from = "builder", src = "/out/hello", dest = "/hello" }
[stage.final.config]
entrypoint = ["/hello"]
EOF
# The builder's base alone, for podman: the same base table, no steps.
cat >"$WORK/base.toml" <<'EOF'
[image]
name = "c-base"
[base]
debian = { suite = "bookworm", variant = "minbase", include = ["gcc", "libc6-dev"] }
EOF
cat >"$WORK/app/Containerfile" <<EOF
FROM $R/bench/c-base:1 AS builder
COPY main.c /src/main.c
RUN mkdir -p /out && gcc -O2 -static -o /out/hello /src/main.c
FROM scratch
COPY --from=builder /out/hello /hello
ENTRYPOINT ["/hello"]
EOF

ref=docker://$R/bench/hello-cache:main
export FACTORY_CACHE=$WORK/store
log "cold: factory build --cache-to (Debian bootstrap with gcc)"
timeout "$TIMEOUT" "$FACTORY" build --tls-verify=false --cache-to "$ref" "$WORK/app/hello.toml" \
    >"$WORK/cold.log" 2>&1 || { tail "$WORK/cold.log" >&2; exit 1; }
timeout "$TIMEOUT" "$FACTORY" build "$WORK/base.toml" >"$WORK/base.log" 2>&1 &&
    timeout "$TIMEOUT" "$FACTORY" push --tls-verify=false c-base:latest "docker://$R/bench/c-base:1" \
        >>"$WORK/base.log" 2>&1 || { tail "$WORK/base.log" >&2; exit 1; }
# The same cache without its listings, under another tag.
manifest=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/bench/hello-cache/manifests/main")
curl -s "http://$R/v2/bench/hello-cache/blobs/$(jq -r .config.digest <<<"$manifest")" |
    jq -c 'del(.listings)' >"$WORK/old.json"
d=sha256:$(sha256sum "$WORK/old.json" | cut -d' ' -f1)
loc=$(curl -si -X POST "http://$R/v2/bench/hello-cache/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
[[ $loc == http* ]] || loc=http://$R$loc
[[ $loc == *\?* ]] && loc="$loc&digest=$d" || loc="$loc?digest=$d"
curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/old.json" "$loc" >/dev/null
jq -c --arg d "$d" --argjson s "$(stat -c %s "$WORK/old.json")" '.config.digest = $d | .config.size = $s' \
    <<<"$manifest" | curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @- "http://$R/v2/bench/hello-cache/manifests/old" >/dev/null

podman_conf
# pod ROOT ARGS…: podman on its own storage under $WORK/pod.ROOT.
pod() {
    local root=$WORK/pod.$1
    shift
    mkdir -p "$root/tmp"
    podman --root "$root/root" --runroot "$root/run" --storage-driver overlay --tmpdir "$root/tmp" "$@"
}
# pod_build.sh ROOT: a fresh agent's podman build, as a script bench_seconds can time.
{
    printf 'root=%q/pod.$1\n' "$WORK"
    printf 'exec podman --root "$root/root" --runroot "$root/run" --storage-driver overlay '
    printf 'build --layers --tls-verify=false --cache-from %q -t localhost/hello-c:1 %q\n' \
        "$R/bench/podcache" "$WORK/app"
} >"$WORK/pod_build.sh"
log "cold: podman build --layers --cache-to"
timeout "$TIMEOUT" podman --root "$WORK/pod.cold/root" --runroot "$WORK/pod.cold/run" \
    --storage-driver overlay build -q --layers --tls-verify=false --cache-to "$R/bench/podcache" \
    -t localhost/hello-c:1 "$WORK/app" >"$WORK/pcold.log" 2>&1 || { tail "$WORK/pcold.log" >&2; exit 1; }

f_fresh=() f_old=() p_fresh=() f_mb=() f_old_mb=()
for ((i = 1; i <= RUNS; i++)); do
    export FACTORY_CACHE=$WORK/agent.$i
    f_fresh+=("$(bench_seconds "$FACTORY" build --tls-verify=false --cache-from "$ref" "$WORK/app/hello.toml")")
    f_mb+=("$("$FACTORY" cache stats --json | jq '.bytes_downloaded / 1e6')")
    export FACTORY_CACHE=$WORK/agent-old.$i
    f_old+=("$(bench_seconds "$FACTORY" build --tls-verify=false --cache-from "docker://$R/bench/hello-cache:old" "$WORK/app/hello.toml")")
    f_old_mb+=("$("$FACTORY" cache stats --json | jq '.bytes_downloaded / 1e6')")
    p_fresh+=("$(bench_seconds bash "$WORK/pod_build.sh" "fresh$i")")
    # Both RUN and COPY steps must come from podman's registry cache, or the row means nothing.
    [[ $(grep -c "Using cache" "$WORK/cmd.log") -ge 3 ]] ||
        { echo "remote-stages: podman did not use its cache:" >&2; tail "$WORK/cmd.log" >&2; exit 1; }
    rm -rf "$WORK/agent.$i" "$WORK/agent-old.$i"
    pod "fresh$i" system reset -f >/dev/null 2>&1 || true
    rm -rf "$WORK/pod.fresh$i"
    log "round $i: factory ${f_fresh[-1]} s (${f_mb[-1]} MB), without listings ${f_old[-1]} s (${f_old_mb[-1]} MB), podman ${p_fresh[-1]} s"
done
# What podman downloads: the base and its cached layers, as the registry holds them.
pod_mb=$(jq -s '[.[].layers[].size] | add / 1e6' \
    <(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$R/v2/bench/c-base/manifests/1"))

m() { printf '%s\n' "$@" | median; }
printf '%-28s %10s %10s %8s\n' "fresh agent, all cached" "factory" "podman" "ratio"
row() { awk -v n="$1" -v f="$2" -v p="$3" 'BEGIN { printf "%-28s %10.3f %10.3f %8.3f\n", n, f, p, f / p }'; }
row "seconds" "$(m "${f_fresh[@]}")" "$(m "${p_fresh[@]}")"
printf '%-28s %10.1f %10.1f   (podman: the base alone)\n' "MB downloaded" "$(m "${f_mb[@]}")" "$pod_mb"
printf '%-28s %10.3f s, %.1f MB\n' "factory, cache w/o listings" "$(m "${f_old[@]}")" "$(m "${f_old_mb[@]}")"
log "medians of $RUNS; load $(cut -d' ' -f1-3 /proc/loadavg)"
