#!/usr/bin/env bash
# Disk export benchmark: `factory export IMAGE ext4:FILE` and `raw:FILE` of the copy-heavy image
# against the pipeline a user would script by hand from the same image:
#   umoci unpack --image LAYOUT:TAG BUNDLE && mke2fs -t ext4 -d BUNDLE/rootfs FILE SIZE
# (layers gzip: umoci 0.4.7 reads no zstd) (the floor: no owner fix-ups, no reproducibility, no JSON). Same size for both (factory's
# default for the image). Medians of RUNS after one unmeasured warm-up of each.
#
#   bash bench/export.sh                     # as root; FACTORY defaults to build/factory
#   SMALL_FILES=2000 SMALL_MB=20 BIG_MB=50 RUNS=1 bash bench/export.sh   # a quick smoke run
#
# Where: a fresh tmpfs (MACHINE-NOTES: creating many files right after deleting many is slow
# on this ext4), removed at the end. Needs ~3 GB of RAM with the defaults.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-3}
SMALL_FILES=${SMALL_FILES:-20000}
SMALL_MB=${SMALL_MB:-200}
BIG_MB=${BIG_MB:-500}
TIMEOUT=${TIMEOUT:-900}

[[ -x $FACTORY ]] || { echo "export: no factory binary at $FACTORY" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "export: run as root (umoci unpack keeps owners as root)" >&2; exit 1; }
for tool in python3 umoci mke2fs debugfs jq; do
    command -v "$tool" >/dev/null || { echo "export: missing $tool (scripts/setup.sh)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/factory-bench.XXXXXX)
mount -t tmpfs -o size=8g,mode=0755 tmpfs "$WORK"
cleanup() { cd /; umount -l "$WORK" 2>/dev/null || true; rmdir "$WORK" 2>/dev/null || true; }
trap cleanup EXIT
cd "$WORK"

log "generating $SMALL_FILES files (~$SMALL_MB MB) + one $BIG_MB MB file"
python3 "$here/bench/gen_tree.py" "$WORK/tree" "$SMALL_FILES" "$SMALL_MB" "$BIG_MB"
bb=$(dirname "$(readlink -f /bin/busybox)")
cat >"$WORK/tree/bench.toml" <<EOF2
[image]
name = "bench-export"
epoch = 1700000000

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
copy = [{ src = ".", dest = "/data/" }]
EOF2
digest=$("$FACTORY" build --cache "$WORK/store" "$WORK/tree/bench.toml" 2>/dev/null | tail -n 1 | cut -d' ' -f2)
log "image $digest"
"$FACTORY" export --cache "$WORK/store" "$digest" "oci:$WORK/layout:bench" >/dev/null
"$FACTORY" export --cache "$WORK/store" "$digest" "ext4:$WORK/probe.ext4" >/dev/null
size=$(jq .size "$WORK/probe.ext4.json")
files=$(jq .files "$WORK/probe.ext4.json")
rm -f "$WORK/probe.ext4" "$WORK/probe.ext4.json"
log "$files entries; file system size $((size >> 20)) MiB"

run_factory() { rm -f "$WORK/out.img" "$WORK/out.img.json"; bench_seconds "$FACTORY" export --cache "$WORK/store" "$digest" "$1:$WORK/out.img"; }
run_hand() {
    rm -rf "$WORK/bundle" "$WORK/hand.ext4"
    bench_seconds sh -c "umoci unpack --image '$WORK/layout:bench' '$WORK/bundle' &&
        mke2fs -q -F -t ext4 -d '$WORK/bundle/rootfs' '$WORK/hand.ext4' $((size / 1024))k"
}

declare -A times
for what in ext4 raw hand; do
    log "warm-up: $what"
    if [[ $what == hand ]]; then run_hand >/dev/null; else run_factory "$what" >/dev/null; fi
    for ((i = 1; i <= RUNS; i++)); do
        if [[ $what == hand ]]; then t=$(run_hand); else t=$(run_factory "$what"); fi
        log "$what run $i: ${t}s"
        times[$what]+="$t"$'\n'
    done
done
ext4=$(printf '%s' "${times[ext4]}" | median)
raw=$(printf '%s' "${times[raw]}" | median)
hand=$(printf '%s' "${times[hand]}" | median)
echo "export of the copy-heavy image ($files entries, $((size >> 20)) MiB file system), median of $RUNS:"
printf '  %-44s %8ss\n' "factory export ext4:" "$ext4" "factory export raw:" "$raw" \
    "umoci unpack + mke2fs -d (by hand)" "$hand"
awk -v e="$ext4" -v r="$raw" -v h="$hand" 'BEGIN { printf "  ratio ext4/hand %.2fx, raw/hand %.2fx\n", e / h, r / h }'
