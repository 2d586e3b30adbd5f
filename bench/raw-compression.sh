#!/usr/bin/env bash
# The raw limits of this machine for a layer: how fast tar, sha256sum, gzip -6, pigz -6 and
# zstd -3 go over the same tar of a ~200 MB mixed tree (C headers and shared libraries, or
# the TREE you give). With BUILD_DIR set to a build directory holding layer_writer_test, it
# then runs factory's own layer writer over the same tree, blobs to /dev/null.
#
#   bench/raw-compression.sh [TREE]
#   BUILD_DIR=build-layer REPEAT=3 bench/raw-compression.sh
#
# REPEAT=n runs everything n times and reports the best time: on a shared machine the fastest
# run is the one other load disturbed least.
#
# A benchmark, not a test: about a minute on 2 cores; everything it creates lives in one temp
# directory removed on exit. MB/s are of uncompressed tar bytes, MB = 10^6 bytes.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/factory-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

tree=${1:-}
if [[ -z $tree ]]; then
    tree=$work/tree
    mkdir -p "$tree/lib"
    cp -a /usr/include "$tree/include"
    budget=$((200 * 1000 * 1000 - $(du -sb "$tree" | cut -f1)))
    # Shared libraries in name order while they fit the budget: the same tree on every run.
    find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -printf '%s %p\n' |
        sort -k2 | while read -r size path; do
        ((size <= budget)) || continue
        budget=$((budget - size))
        cp -a "$path" "$tree/lib/"
    done
fi

tar -C "$tree" --sort=name --format=posix --numeric-owner -cf "$work/layer.tar" .
tar_bytes=$(stat -c %s "$work/layer.tar")
cat "$work/layer.tar" >/dev/null # into the page cache
printf '%s: %d files, tar %.1f MB, %s cores, load %s\n' "$tree" \
    "$(find "$tree" -type f | wc -l)" "$(echo "$tar_bytes / 1000000" | bc -l)" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"

repeat=${REPEAT:-1}

# measure NAME COMMAND: runs COMMAND with the tar on stdin; the best time, MB/s, output size.
measure() {
    local best=1e9 out start end i
    for ((i = 0; i < repeat; i++)); do
        start=$(date +%s.%N)
        out=$(bash -c "$2" <"$work/layer.tar" | wc -c)
        end=$(date +%s.%N)
        best=$(awk -v b="$best" -v s="$start" -v e="$end" 'BEGIN { print (e - s < b) ? e - s : b }')
    done
    awk -v n="$1" -v d="$best" -v t="$tar_bytes" -v o="$out" 'BEGIN {
        printf "%-22s %6.2f s  %7.1f MB/s  -> %.1f MB (%.1f%%)\n", n, d, t / 1e6 / d,
               o / 1e6, 100 * o / t }'
}

measure "tar -c (warm cache)" "tar -C '$tree' --sort=name --format=posix --numeric-owner -cf - ."
measure "sha256sum" "sha256sum"
measure "gzip -6" "gzip -6 -n -c"
measure "pigz -6 -p1" "pigz -6 -n -p1 -c"
measure "pigz -6 -p2" "pigz -6 -n -p2 -c"
measure "zstd -3 -T1" "zstd -q -3 -T1 -c"
measure "zstd -3 -T2" "zstd -q -3 -T2 -c"

test_binary=${BUILD_DIR:+$BUILD_DIR/tests/layer_writer_test}
if [[ -n $test_binary && -x $test_binary ]]; then
    echo "factory (tar + sha256 x2 + compression, one pass; peak RSS of the test process):"
    # One process per mode, so each peak RSS is that mode's own.
    for mode in none gzip1 gzip2 zstd; do
        FACTORY_BENCH_TREE=$tree FACTORY_BENCH_MODE=$mode REPEAT=$repeat "$test_binary" \
            --gtest_also_run_disabled_tests --gtest_filter='*Throughput*' | grep 'MB/s'
    done
fi
