#!/usr/bin/env bash
# Registry build cache benchmark: recipes/ci-agent.toml (Debian bootstrap + apt-get) built on a
# fresh store cold, against the same on a fresh store with --cache-from a local docker-registry
# that an earlier build filled with --cache-to; and a RUN step that misses with the apt cache
# mount restored from the registry against one without it.
#
#   bash bench/remote-cache.sh             # as root; FACTORY defaults to build/factory
#   RUNS=3 bash bench/remote-cache.sh
#
# Medians of RUNS (default 3), each run in a new store and HOME:
#   cold build              factory build ci-agent.toml (mmdebstrap, apt-get through the mirror)
#   warm agent              factory build --cache-from docker://… (every step a registry hit)
#   miss, mount restored    a changed apt step, --cache-from: the archives come from the cache
#   miss, no mount          the same, from a cache of the same records without the mount
#                           (exported with mode=min)
# Bounded: each command at most TIMEOUT seconds (default 900).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-900}
[[ -x $FACTORY ]] || { echo "remote-cache: no factory binary at $FACTORY" >&2; exit 1; }
for tool in docker-registry curl python3 mmdebstrap; do
    command -v "$tool" >/dev/null || { echo "remote-cache: missing $tool (scripts/setup.sh)" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "remote-cache: run as root (Debian bootstrap, RUN steps)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/factory-bench.XXXXXX)
REG_PID=
cleanup() {
    [[ -n $REG_PID ]] && { kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT

bench_registry

recipe=$here/recipes/ci-agent.toml
# The same recipe with the apt step changed (one more package): a miss on every agent.
sed 's/libc6-dev"/libc6-dev less"/' "$recipe" >"$WORK/changed.toml"
grep -q 'libc6-dev less' "$WORK/changed.toml" || { echo "remote-cache: could not change the apt step" >&2; exit 1; }
ref=docker://$R/bench/ci-agent:cache
# agent_build ARGS…: a build in a new store and HOME (a directory of its own: it runs in a
# command substitution, where no counter survives); prints its seconds.
agent_build() {
    local agent
    agent=$(mktemp -d "$WORK/agent.XXXXXX")
    mkdir -p "$agent/home"
    FACTORY_CACHE=$agent/store HOME=$agent/home \
        bench_seconds "$FACTORY" build --tls-verify=false --progress plain "$@"
    LAST_AGENT=$agent
}

log "filling the registry cache (one cold build with --cache-to)"
agent_build --cache-to "$ref" "$recipe" >/dev/null
FACTORY_CACHE=$LAST_AGENT/store timeout "$TIMEOUT" "$FACTORY" cache export --tls-verify=false \
    "$ref-nomount,mode=min" >/dev/null 2>&1
cold=() warm=() restored=() bare=()
for i in $(seq 1 "$RUNS"); do
    log "run $i/$RUNS"
    cold+=("$(agent_build "$recipe")")
    warm+=("$(agent_build --cache-from "$ref" "$recipe")")
    restored+=("$(agent_build --cache-from "$ref" "$WORK/changed.toml")")
    bare+=("$(agent_build --cache-from "$ref-nomount" "$WORK/changed.toml")")
done
med() { printf '%s\n' "$@" | median; }
c=$(med "${cold[@]}") w=$(med "${warm[@]}") r=$(med "${restored[@]}") b=$(med "${bare[@]}")
printf '%-28s %10s\n' "remote-cache ($RUNS runs)" "median s"
printf '%-28s %10s\n' "cold build" "$c"
printf '%-28s %10s   (%s× the cold build)\n' "warm agent (--cache-from)" "$w" \
    "$(awk -v a="$w" -v b="$c" 'BEGIN { printf "%.3f", a / b }')"
printf '%-28s %10s\n' "miss, apt mount restored" "$r"
printf '%-28s %10s\n' "miss, no mount" "$b"
