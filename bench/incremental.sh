#!/usr/bin/env bash
# Incremental layers: the "change one small file" round of one big copy step (the
# 20,000-file tree of bench/gen_tree.py, 200 MB, no big file), with the block reuse of this
# binary against another factory binary (OLD, e.g. one built before incremental layers, which
# compresses the whole layer again), in their own stores, interleaved so that both see the same
# load; with `tar -c | sha256sum` of the directory (reading and hashing it again: the floor of a
# rebuild with a new diff_id) and this binary's no-op in the same rounds.
#
#   OLD=/path/to/old/factory bash bench/incremental.sh        # as root (private tmpfs)
#   SMALL_FILES=5000 SMALL_MB=50 RUNS=3 bash bench/incremental.sh   # without OLD: this binary only
#   EDIT_AT=10000 bash bench/incremental.sh   # edit the 10,000th .dat file (the middle), not the 500th
#   COMPRESSION=zstd bash bench/incremental.sh  # zstd layers (a frame per block), not gzip
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
OLD=${OLD:-}
RUNS=${RUNS:-3}
SMALL_FILES=${SMALL_FILES:-20000}
SMALL_MB=${SMALL_MB:-200}
EDIT_AT=${EDIT_AT:-500} # the N-th .dat file in sorted order is the one edited
COMPRESSION=${COMPRESSION:-gzip}
[[ $COMPRESSION == gzip || $COMPRESSION == zstd ]] ||
    { echo "incremental: COMPRESSION=$COMPRESSION: expected gzip or zstd" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "incremental: run as root (private tmpfs)" >&2; exit 1; }
W=$(mktemp -d /tmp/factory-incremental.XXXXXX)
mount -t tmpfs -o size=4g tmpfs "$W"
trap 'cd /; umount -l "$W"; rmdir "$W"' EXIT
python3 "$here/bench/gen_tree.py" "$W/tree" "$SMALL_FILES" "$SMALL_MB" 0 >/dev/null
printf '[image]\nname = "incremental"\ncompression = "%s"\n[[step]]\ncopy = [{ src = "src", dest = "/data/src/" }]\n' \
    "$COMPRESSION" >"$W/tree/bench.toml"
printf 'bench.toml\n' >"$W/tree/.factoryignore"
changed=$(find "$W/tree/src" -type f -name '*.dat' | sort | sed -n "${EDIT_AT}p")
seconds() {
    local s e
    s=$(date +%s.%N)
    "$@" >"$W/log" 2>&1 || { tail -n 20 "$W/log" >&2; exit 1; }
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'
}
build() { seconds "$1" build --progress plain --cache "$W/$2" "$W/tree/bench.toml"; }
echo "compression $COMPRESSION; load at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cold: factory $(build "$FACTORY" new) s${OLD:+, old $(build "$OLD" old) s}"
for i in $(seq 1 "$RUNS"); do
    echo "change $i $RANDOM" >>"$changed"
    new=$(build "$FACTORY" new)
    reused=$(grep -oE 'reused [0-9]+ of [0-9]+ compressed blocks[^)]*' "$W/log" || echo "no blocks reused")
    old=n/a
    [[ -z $OLD ]] || old=$(build "$OLD" old)
    sha=$(seconds sh -c "tar -C '$W/tree' -cf - src | sha256sum")
    noop=$(build "$FACTORY" new)
    echo "round $i: change $new s ($reused), old binary $old s, no-op $noop s, tar -c | sha256sum $sha s; load $(cut -d' ' -f1 /proc/loadavg)"
done
