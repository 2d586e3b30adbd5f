#!/usr/bin/env bash
# Rebuild benchmark (the step cache): factory against `podman build --layers` on the copy-heavy
# tree (bench/gen_tree.py) with a recipe of five copy steps — busybox, the 20,000-file tree,
# the 500 MB file and three small RUN-free copies — and the equivalent Containerfile.
#
#   bash bench/rebuild.sh                # as root; RUNS=5 by default
#   SMALL_FILES=2000 SMALL_MB=20 BIG_MB=50 RUNS=3 bash bench/rebuild.sh   # a quick run
#
# After one cold build of each (not compared), it measures, RUNS times each, median reported:
#   no-op          nothing changed
#   touch          one small file touched (same content, new mtime)
#   change         one small file's content changed (a new value each run): that copy step and
#                  the ones after it rebuild
# and, in the same rounds, a bare stat walk of the same tree (`find -printf '%s %T@'`), the floor
# of a no-op rebuild (target: factory's no-op within 2x of it), and the raw pipelines a changed
# tree step stands against: `tar -c | sha256sum` of the step's directory (reading and hashing it
# again, the floor of any rebuild that yields a new diff_id) and `tar -c | pigz -6 -p2` (what
# compressing the whole layer again costs). SKIP_PODMAN=1 leaves podman out
# (a quick run of factory against the stat walk). EDIT_AT=N picks the file the change round
# edits: the N-th of the tree's ~20,000 .dat files in sorted order (500 by default, early in
# the layer; 10000 is the middle).
# podman keeps its layers uncompressed; factory writes gzip blobs. Both run on a private tmpfs.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-5}
SMALL_FILES=${SMALL_FILES:-20000}
SMALL_MB=${SMALL_MB:-200}
BIG_MB=${BIG_MB:-500}
EDIT_AT=${EDIT_AT:-500} # the change round edits the EDIT_AT-th .dat file of the tree, sorted
TIMEOUT=${TIMEOUT:-600}

[[ $(id -u) -eq 0 ]] || { echo "rebuild: run as root (private tmpfs, rootful podman)" >&2; exit 1; }
[[ -x $FACTORY ]] || { echo "rebuild: no factory binary at $FACTORY" >&2; exit 1; }
SKIP_PODMAN=${SKIP_PODMAN:-0}
[[ $SKIP_PODMAN == 1 ]] || command -v podman >/dev/null ||
    { echo "rebuild: podman missing (scripts/setup.sh; or SKIP_PODMAN=1)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/factory-rebuild.XXXXXX)
mount -t tmpfs -o size=8g,mode=0755 tmpfs "$WORK"
cleanup() {
    cd /
    findmnt -rn -o TARGET | awk -v d="$WORK/" 'index($0, d) == 1' | sort -r |
        xargs -r -n1 umount -l 2>/dev/null || true
    umount -l "$WORK" 2>/dev/null || true
    rmdir "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

log "generating the tree"
python3 "$here/bench/gen_tree.py" "$WORK/tree" "$SMALL_FILES" "$SMALL_MB" "$BIG_MB"
mkdir -p "$WORK/tree/etc" "$WORK/tree/scripts"
echo "setting = 1" >"$WORK/tree/etc/app.conf"
printf '#!/bin/sh\necho run\n' >"$WORK/tree/scripts/run.sh"
changed=$(find "$WORK/tree/src" -type f -name '*.dat' | sort | sed -n "${EDIT_AT}p") # in the big tree step
touched=$(find "$WORK/tree/src" -type f -name '*.dat' | sort | sed -n 501p)
bb=$(dirname "$(readlink -f /bin/busybox)")
cat >"$WORK/tree/bench.toml" <<EOF
[image]
name = "rebuild"
[contexts]
busybox = "$bb"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
copy = [{ src = "src", dest = "/data/src/" }]
[[step]]
copy = [{ src = "big.bin", dest = "/data/big.bin" }]
[[step]]
copy = [{ src = "etc/app.conf", dest = "/etc/app.conf" }]
[[step]]
copy = [{ src = "scripts", dest = "/usr/local/bin/" }]
EOF
cat >"$WORK/tree/Containerfile" <<'EOF'
FROM localhost/bench-busybox:1
COPY src /data/src/
COPY big.bin /data/big.bin
COPY etc/app.conf /etc/app.conf
COPY scripts /usr/local/bin/
EOF
printf 'bench.toml\nContainerfile\n' | tee "$WORK/tree/.factoryignore" >"$WORK/tree/.containerignore"

tools=(factory)
[[ $SKIP_PODMAN == 1 ]] || tools+=(podman)
podman_conf
mkdir -p "$WORK/bbroot/bin" && cp /bin/busybox "$WORK/bbroot/bin/" && ln -s busybox "$WORK/bbroot/bin/sh"
tar -C "$WORK/bbroot" -cf "$WORK/busybox.tar" .
pm=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay
    --tmpdir "$WORK/podman/tmp")
mkdir -p "$WORK/podman/tmp"
[[ $SKIP_PODMAN == 1 ]] || "${pm[@]}" import -q "$WORK/busybox.tar" localhost/bench-busybox:1 >/dev/null


factory_build() { bench_seconds "$FACTORY" build --progress plain --cache "$WORK/store" "$WORK/tree/bench.toml"; }
stat_walk() { bench_seconds find "$WORK/tree" -printf '%s %T@\n'; }
raw_sha() { bench_seconds sh -c "tar -C '$WORK/tree' -cf - src | sha256sum"; }
raw_pigz() { bench_seconds sh -c "tar -C '$WORK/tree' -cf - src | pigz -6 -p2 >/dev/null"; }
podman_build() {
    [[ $SKIP_PODMAN == 1 ]] && { echo 0; return; }
    bench_seconds "${pm[@]}" build -q --layers --timestamp 0 -f "$WORK/tree/Containerfile" -t localhost/rebuild:1 "$WORK/tree"
}

log "cold builds (not compared): factory $(factory_build) s, podman $(podman_build) s"
for tool in factory podman; do
    : >"$WORK/$tool.noop" && : >"$WORK/$tool.touch" && : >"$WORK/$tool.change"
done
: >"$WORK/find.noop" && : >"$WORK/raw.sha" && : >"$WORK/raw.pigz"
log "load at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
# Each round: one change (both tools see the same edit), then a no-op, then a touch, each
# measured for both tools, so no tool's measurement sees an edit made for the other.
for i in $(seq 1 "$RUNS"); do
    log "run $i/$RUNS"
    echo "change $i $RANDOM" >>"$changed"
    for tool in "${tools[@]}"; do "${tool}_build" >>"$WORK/$tool.change"; done
    for tool in "${tools[@]}"; do "${tool}_build" >>"$WORK/$tool.noop"; done
    stat_walk >>"$WORK/find.noop"
    raw_sha >>"$WORK/raw.sha"
    command -v pigz >/dev/null && raw_pigz >>"$WORK/raw.pigz"
    touch "$touched"
    for tool in "${tools[@]}"; do "${tool}_build" >>"$WORK/$tool.touch"; done
done

row() { printf '%-10s %12s %12s %10s\n' "$@"; }
echo
echo "rebuild: $(find "$WORK/tree/src" -type f | wc -l) files + ${BIG_MB} MiB, 5 copy steps; median of $RUNS (seconds)"
row "" factory "podman" ratio
for kind in noop touch change; do
    f=$(median 3 <"$WORK/factory.$kind")
    p=n/a r=n/a
    if [[ $SKIP_PODMAN != 1 ]]; then
        p=$(median 3 <"$WORK/podman.$kind")
        r=$(awk -v f="$f" -v p="$p" 'BEGIN { printf "%.3f", f / p }')
    fi
    row "$kind" "$f" "$p" "$r"
done
w=$(median 3 <"$WORK/find.noop")
f=$(median 3 <"$WORK/factory.noop")
echo "stat walk (find -printf '%s %T@') $w s; factory no-op / stat walk $(awk -v f="$f" -v w="$w" 'BEGIN { printf "%.2f", f / w }')"
echo "raw, the tree step's directory: tar -c | sha256sum $(median 3 <"$WORK/raw.sha") s; tar -c | pigz -6 -p2 $( [[ -s $WORK/raw.pigz ]] && median 3 <"$WORK/raw.pigz" || echo n/a) s"
log "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
