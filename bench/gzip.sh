#!/usr/bin/env bash
# factory's gzip writer against pigz -6 -p2 on the same bytes, in one run, medians: the
# compressor alone on a tar of text (the first MB megabytes of a sorted tar of /usr/include,
# or of the TREE you give), the compressor with a layer's extra work (both SHA-256s, block
# keys and map), and libdeflate-gzip -6 on two halves at once as the raw limit of libdeflate
# on 2 cores. Prints wall seconds, output MB and the ratios to pigz.
#
#   BUILD_DIR=build bash bench/gzip.sh [TREE]
#   MB=20 RUNS=3 BUILD_DIR=build bash bench/gzip.sh      # quick, for a loaded machine
#
# A benchmark, not a test: everything lives in one temp directory (on /dev/shm when there is
# one) removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../build}
test_binary=$build/tests/layer_gzip_test
[[ -x $test_binary ]] || { echo "gzip.sh: no $test_binary (set BUILD_DIR)" >&2; exit 2; }
base=/dev/shm
[[ -d $base && -w $base ]] || base=${TMPDIR:-/tmp}
WORK=$(mktemp -d "$base/factory-bench-gzip.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

tree=${1:-/usr/include}
mb=${MB:-100}
runs=${RUNS:-5}
tar -C "$tree" --sort=name --format=posix --numeric-owner -cf - . 2>/dev/null |
    head -c $((mb * 1000 * 1000)) >"$WORK/input.tar" || true
bytes=$(stat -c %s "$WORK/input.tar")
half=$(((bytes + 1) / 2))
head -c "$half" "$WORK/input.tar" >"$WORK/a"
tail -c +$((half + 1)) "$WORK/input.tar" >"$WORK/b"
log "input: $tree, $((bytes / 1000000)) MB; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

factory_gzip() { # [LAYER]: 1 for a layer's hashing too
    FACTORY_BENCH_FILE=$WORK/input.tar FACTORY_BENCH_THREADS=2 FACTORY_BENCH_LAYER=${1:-0} \
        "$test_binary" --gtest_also_run_disabled_tests \
        --gtest_filter='LayerGzip.DISABLED_Throughput' |
        awk '/^[0-9.]+ [0-9]+$/ { print $2 }' >"$WORK/factory${1:-}.size"
}
factory_layer() { factory_gzip 1; }
pigz_gzip() { pigz -6 -n -p2 -c "$WORK/input.tar" | wc -c >"$WORK/pigz.size"; }
libdeflate_halves() {
    { libdeflate-gzip -6 -c "$WORK/a" | wc -c >"$WORK/a.size"; } &
    libdeflate-gzip -6 -c "$WORK/b" | wc -c >"$WORK/b.size"
    wait
    echo $(($(cat "$WORK/a.size") + $(cat "$WORK/b.size"))) >"$WORK/halves.size"
}
export WORK test_binary
export -f factory_gzip factory_layer pigz_gzip libdeflate_halves
tools=(pigz_gzip factory_gzip factory_layer)
command -v libdeflate-gzip >/dev/null && tools+=(libdeflate_halves)

# One warm-up round, then RUNS rounds with the tools interleaved, so load hits all alike.
for tool in "${tools[@]}"; do "$tool"; done
for ((i = 0; i < runs; i++)); do
    for tool in "${tools[@]}"; do
        bench_seconds bash -c "$tool" >>"$WORK/$tool.times"
    done
done

pigz_time=$(median <"$WORK/pigz_gzip.times")
pigz_size=$(cat "$WORK/pigz.size")
printf '%-28s %8s %9s %10s %10s\n' "" "time (s)" "size (MB)" "time/pigz" "size/pigz"
row() { # NAME TIMES SIZE
    local t
    t=$(median <"$2")
    awk -v n="$1" -v t="$t" -v s="$3" -v pt="$pigz_time" -v ps="$pigz_size" 'BEGIN {
        printf "%-28s %8.3f %9.2f %10.2f %10.3f\n", n, t, s / 1e6, t / pt, s / ps }'
}
row "pigz -6 -p2" "$WORK/pigz_gzip.times" "$pigz_size"
row "factory gzip, 2 threads" "$WORK/factory_gzip.times" "$(cat "$WORK/factory.size")"
row "  + layer hashing and keys" "$WORK/factory_layer.times" "$(cat "$WORK/factory1.size")"
[[ -f $WORK/libdeflate_halves.times ]] &&
    row "libdeflate-gzip -6, 2 halves" "$WORK/libdeflate_halves.times" "$(cat "$WORK/halves.size")"
log "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); medians of $runs"
