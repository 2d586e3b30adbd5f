#!/usr/bin/env bash
# Parallel builds: --jobs 2 against --jobs 1, cold (a fresh store per run), medians of RUNS.
#
#   bash bench/parallel.sh                     # FACTORY defaults to build/factory
#   RUNS=5 MB=50 bash bench/parallel.sh
#   RUNS=1 MB=10 bash bench/parallel.sh        # a quick smoke run
#
# Two workloads:
#   stages   one recipe: 4 independent stages, each copying its own tree of ~MB MB of
#            compressible files (gzip), and a final stage copying from all four
#   recipes  4 recipes in one `factory build a.toml b.toml c.toml d.toml`, each copying its tree
# Peak RSS of the whole factory process comes from /usr/bin/time -f %M; with --jobs 2 at most
# two stages run, so a running step's share is at most that peak.
#
# The data: bench/gen_tree.py (deterministic, seeded): per tree 400 files, log-normal sizes,
# text, structured binary and random content; compresses about as well as a typical mix.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-3}
MB=${MB:-50}
TIMEOUT=${TIMEOUT:-900}
[[ -x $FACTORY ]] || { echo "parallel: no factory binary at $FACTORY" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "parallel: missing /usr/bin/time" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/factory-bench-parallel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "work area $WORK; $MB MB per tree, $RUNS runs"

for i in 1 2 3 4; do
    python3 "$here/bench/gen_tree.py" "$WORK/ctx/t$i" 400 "$MB" 0 >/dev/null
    # Each tree its own bytes: the same seed would let a copy layer be found by content.
    printf 'tree %s\n' "$i" >"$WORK/ctx/t$i/which"
done

{
    printf '[image]\nname = "stages"\n\n'
    for i in 1 2 3 4; do
        printf '[stage.s%s.base]\nimage = "scratch"\n\n' "$i"
        printf '[[stage.s%s.step]]\ncopy = [{ src = "t%s/", dest = "/t%s/" }]\n\n' "$i" "$i" "$i"
    done
    printf '[[step]]\ncopy = [\n'
    for i in 1 2 3 4; do
        printf '  { from = "s%s", src = "/t%s/which", dest = "/which%s" },\n' "$i" "$i" "$i"
    done
    printf ']\n'
} >"$WORK/ctx/stages.toml"
for i in 1 2 3 4; do
    printf '[image]\nname = "r%s"\n\n[[step]]\ncopy = [{ src = "t%s/", dest = "/t%s/" }]\n' \
        "$i" "$i" "$i" >"$WORK/ctx/r$i.toml"
done

# measure JOBS RECIPE...: "seconds peak_rss_kib cpu_seconds" of a cold build (cpu: user + sys).
measure() {
    local jobs=$1
    shift
    rm -rf "$WORK/store"
    local start end
    start=$(date +%s.%N)
    timeout "$TIMEOUT" /usr/bin/time -f '%M %U %S' -o "$WORK/rss" \
        "$FACTORY" --cache "$WORK/store" build --progress plain --jobs "$jobs" "$@" \
        >"$WORK/cmd.log" 2>&1 || { tail -n 20 "$WORK/cmd.log" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" -v r="$(tail -n 1 "$WORK/rss")" \
        'BEGIN { split(r, f, " "); printf "%.3f %d %.2f\n", b - a, f[1], f[2] + f[3] }'
}

report() {
    local name=$1
    shift
    local j1=() j2=() r1=() r2=() c1=() c2=() t r c
    measure 2 "$@" >/dev/null # warm-up: page cache, fresh RAM pages
    for _ in $(seq 1 "$RUNS"); do
        read -r t r c < <(measure 1 "$@"); j1+=("$t"); r1+=("$r"); c1+=("$c")
        read -r t r c < <(measure 2 "$@"); j2+=("$t"); r2+=("$r"); c2+=("$c")
    done
    local m1 m2 p1 p2 u1 u2
    m1=$(printf '%s\n' "${j1[@]}" | median)
    m2=$(printf '%s\n' "${j2[@]}" | median)
    p1=$(printf '%s\n' "${r1[@]}" | median 0)
    p2=$(printf '%s\n' "${r2[@]}" | median 0)
    u1=$(printf '%s\n' "${c1[@]}" | median)
    u2=$(printf '%s\n' "${c2[@]}" | median)
    printf '%-8s --jobs 1 %7.2f s (peak RSS %6.1f MiB)   --jobs 2 %7.2f s (peak RSS %6.1f MiB)   ratio %.2f\n' \
        "$name" "$m1" "$(awk -v k="$p1" 'BEGIN{print k/1024}')" "$m2" \
        "$(awk -v k="$p2" 'BEGIN{print k/1024}')" "$(awk -v a="$m1" -v b="$m2" 'BEGIN{print b/a}')"
    # CPU-seconds / wall seconds: how many cores the build kept busy. A sequential build that
    # already keeps all of them busy leaves --jobs nothing to fill.
    printf '%-8s CPU (user+sys) --jobs 1 %7.2f s, %.2f cores busy   --jobs 2 %7.2f s, %.2f cores busy (of %d)\n' \
        "$name" "$u1" "$(awk -v c="$u1" -v w="$m1" 'BEGIN{print c/w}')" "$u2" \
        "$(awk -v c="$u2" -v w="$m2" 'BEGIN{print c/w}')" "$(nproc)"
}

cd "$WORK/ctx"
report stages stages.toml
report recipes r1.toml r2.toml r3.toml r4.toml
