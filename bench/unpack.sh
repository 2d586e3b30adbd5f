#!/usr/bin/env bash
# Unpacking an image's layers, side by side in one run (medians): factory's applier (safety
# checks on: digests computed, every path resolved inside the root, no archive_write_disk),
# `umoci unpack`, and `tar -xzf` of the same gzip layers one after another. The image is the
# copy-heavy tree (bench/gen_tree.py) copied into a scratch image by factory, so all three read
# the same blobs. Every run writes into a fresh directory on tmpfs, removed after measuring
# (MACHINE-NOTES.md: creating many files right after deleting many is slow on this ext4).
#
#   FACTORY=build/factory BUILD_DIR=build bash bench/unpack.sh            # 20,000 files, RUNS=3
#   SMALL_FILES=2000 SMALL_MB=20 RUNS=3 FACTORY=build/factory BUILD_DIR=build bash bench/unpack.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
FACTORY=$(readlink -f "${FACTORY:-$here/../build/factory}")
build=$(readlink -f "${BUILD_DIR:-$here/../build}")
applier=$build/tests/runtime_applier_test
[[ -x $FACTORY && -x $applier ]] || { echo "unpack.sh: need FACTORY and BUILD_DIR/tests/runtime_applier_test" >&2; exit 2; }
WORK=$(mktemp -d /dev/shm/factory-bench-unpack.XXXXXX)
trap 'cd /; rm -rf "$WORK"' EXIT
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
small_files=${SMALL_FILES:-20000}
small_mb=${SMALL_MB:-200}
runs=${RUNS:-3}

log "generating $small_files files (~$small_mb MB); load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/gen_tree.py" "$WORK/tree" "$small_files" "$small_mb" 0
rm -f "$WORK/tree/big.bin"
cat >"$WORK/tree/unpack.toml" <<'TOML'
[image]
name = "unpack"

[[step]]
copy = [{ src = "src", dest = "/data/src/" }]
TOML
printf 'unpack.toml\n' >"$WORK/tree/.factoryignore"
"$FACTORY" build --progress plain --cache "$WORK/store" "$WORK/tree/unpack.toml" >/dev/null
manifest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "unpack:latest") | .digest' "$WORK/store/index.json")
mapfile -t layers < <(jq -r '.layers[].digest | sub("sha256:"; "")' \
    "$WORK/store/blobs/sha256/${manifest#sha256:}")
blobs=()
for l in "${layers[@]}"; do blobs+=("$WORK/store/blobs/sha256/$l"); done
log "image: ${#layers[@]} layer(s), $(du -cb "${blobs[@]}" | tail -n 1 | cut -f1) bytes compressed"

n=0
fresh() { n=$((n + 1)); mkdir -p "$WORK/out/$n"; echo "$WORK/out/$n"; }
run_factory() {
    local d
    d=$(fresh)
    # The time the test process measures itself: its other tests generate a corpus at start-up.
    FACTORY_BENCH_BLOBS="${blobs[*]}" FACTORY_BENCH_ROOT="$d" timeout 600 "$applier" \
        --gtest_also_run_disabled_tests --gtest_filter='Applier.DISABLED_ApplyThroughput' |
        awk '/^apply seconds/ { print $3 }'
    [[ -d $d/data/src ]] || { echo "unpack.sh: factory's applier wrote nothing" >&2; exit 1; }
    rm -rf "$d"
}
run_tar() {
    local d
    d=$(fresh)
    bench_seconds bash -c 'for b in "${@:2}"; do tar -xzf "$b" -C "$1" || exit 1; done' _ "$d" "${blobs[@]}"
    rm -rf "$d"
}
run_umoci() {
    local d
    d=$(fresh)
    rmdir "$d"
    bench_seconds umoci unpack --rootless --image "$WORK/store:unpack:latest" "$d"
    rm -rf "$d"
}
tools=(run_tar run_factory)
command -v umoci >/dev/null && tools+=(run_umoci)
for tool in "${tools[@]}"; do "$tool" >/dev/null; done # warm-up
for ((i = 0; i < runs; i++)); do
    for tool in "${tools[@]}"; do "$tool" >>"$WORK/$tool.times"; done
done

tar_time=$(median <"$WORK/run_tar.times")
printf '%-34s %9s %8s\n' "" "time (s)" "/ tar -x"
for tool in "${tools[@]}"; do
    t=$(median <"$WORK/$tool.times")
    case $tool in
    run_tar) name="tar -xzf" ;;
    run_factory) name="factory applier (checks on)" ;;
    run_umoci) name="umoci unpack --rootless" ;;
    esac
    awk -v n="$name" -v t="$t" -v b="$tar_time" 'BEGIN { printf "%-34s %9.3f %8.2f\n", n, t, t / b }'
done
log "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); medians of $runs"
