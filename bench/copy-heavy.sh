#!/usr/bin/env bash
# Copy-heavy benchmark: factory against `podman build` and against the raw limits of the
# machine (tar + gzip/pigz/zstd), on a tree of 20,000 small files (~200 MB) plus one 500 MB file.
#
#   bash bench/copy-heavy.sh                  # as root; FACTORY defaults to build/factory
#   RUNS=5 bash bench/copy-heavy.sh
#   SMALL_FILES=2000 SMALL_MB=20 BIG_MB=50 RUNS=1 bash bench/copy-heavy.sh   # a quick smoke run
#
# What is measured (each cold: a fresh store / fresh podman storage per run; median of RUNS,
# after one unmeasured warm-up of each, since the first touch of fresh RAM pages is slow here):
#   factory gzip      factory build, compression = "gzip" (blobs in the store, compressed)
#   factory zstd      the same with compression = "zstd"
#   factory no-op     a second build on the same store (the "Fast" promise: no re-hashing)
#   podman build      FROM a busybox image imported into private storage, COPY the tree
#                     (podman keeps layers uncompressed: nothing is compressed here)
#   podman + push     podman build, then `podman push` to an oci: dir (gzip or zstd): the
#                     comparable artifact, compressed blobs with digests
#   raw limits        tar -c | gzip -6, | pigz -6 -p2, | zstd -3 -T2 (to /dev/null)
# Peak RSS of factory comes from /usr/bin/time -f %M.
#
# The data (deterministic, seeded): file sizes log-normal around 10 kB; each small file is text
# (60%: words and code-like lines), structured binary (25%: repeating records with random
# fields) or random (15%); the big file alternates 1 MiB chunks of text and random bytes, so it
# compresses about as well as a typical mix of sources and binaries (gzip ratio ~0.6).
#
# Where: everything under a fresh tmpfs (root) or /dev/shm, so the ext4 slow-create-after-rm
# effect (MACHINE-NOTES) doesn't distort runs; removed at the end. Needs ~4 GB of RAM.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-3}
SMALL_FILES=${SMALL_FILES:-20000}
SMALL_MB=${SMALL_MB:-200}
BIG_MB=${BIG_MB:-500}
TIMEOUT=${TIMEOUT:-900}   # per measured command
SKIP_PODMAN=${SKIP_PODMAN:-}

[[ -x $FACTORY ]] || { echo "copy-heavy: no factory binary at $FACTORY" >&2; exit 1; }
for tool in python3 pigz zstd gzip tar /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "copy-heavy: missing $tool (scripts/setup.sh)" >&2; exit 1; }
done
if [[ -z $SKIP_PODMAN ]] && ! command -v podman >/dev/null; then
    echo "copy-heavy: podman missing; set SKIP_PODMAN=1 to run without it" >&2
    exit 1
fi

# ---- work area ------------------------------------------------------------------------------
if [[ $(id -u) -eq 0 ]]; then
    WORK=$(mktemp -d /tmp/factory-bench.XXXXXX)
    mount -t tmpfs -o size=8g,mode=0755 tmpfs "$WORK"
    cleanup() {
        cd /
        findmnt -rn -o TARGET | awk -v d="$WORK/" 'index($0, d) == 1' | sort -r |
            xargs -r -n1 umount -l 2>/dev/null || true
        umount -l "$WORK" 2>/dev/null || true
        rmdir "$WORK" 2>/dev/null || true
    }
else
    WORK=$(mktemp -d /dev/shm/factory-bench.XXXXXX)
    cleanup() { cd /; rm -rf "$WORK"; }
    echo "copy-heavy: not root: using $WORK, podman runs rootless (may fail; SKIP_PODMAN=1)" >&2
fi
trap cleanup EXIT
cd "$WORK"


# ---- data -----------------------------------------------------------------------------------
log "generating $SMALL_FILES files (~$SMALL_MB MB) + one $BIG_MB MB file"
python3 "$here/bench/gen_tree.py" "$WORK/tree" "$SMALL_FILES" "$SMALL_MB" "$BIG_MB"
tree_bytes=$(du -sb "$WORK/tree" | cut -f1)
tree_mb=$((tree_bytes / 1024 / 1024))
log "tree: $(find "$WORK/tree" -type f | wc -l) files, $tree_mb MiB"

bb=$(dirname "$(readlink -f /bin/busybox)")
for c in gzip zstd; do
    cat >"$WORK/tree/bench-$c.toml" <<EOF
[image]
name = "bench-$c"
compression = "$c"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]

[[step]]
copy = [{ src = "src", dest = "/data/src/" }, { src = "big.bin", dest = "/data/big.bin" }]
EOF
done
printf 'bench-*.toml\nContainerfile\n' >"$WORK/tree/.factoryignore"
printf 'bench-*.toml\nContainerfile\n' >"$WORK/tree/.containerignore"
cat >"$WORK/tree/Containerfile" <<'EOF'
FROM localhost/bench-busybox:1
COPY src /data/src/
COPY big.bin /data/big.bin
EOF

# ---- measuring ------------------------------------------------------------------------------
# timed OUTFILE CMD...: runs CMD under /usr/bin/time; appends "seconds maxrss_kb" to OUTFILE.
timed() {
    local out=$1
    shift
    /usr/bin/time -o "$WORK/time.last" -f '%e %M' timeout "$TIMEOUT" "$@" >"$WORK/cmd.log" 2>&1 || {
        echo "copy-heavy: command failed: $*" >&2
        tail -n 20 "$WORK/cmd.log" >&2
        exit 1
    }
    tail -n 1 "$WORK/time.last" >>"$out"
}
med_time() { cut -d' ' -f1 "$1" | median 2; }
max_rss_mb() { cut -d' ' -f2 "$1" | sort -n | tail -n 1 | awk '{ printf "%d", $1 / 1024 }'; }

run_factory() { # run_factory COMPRESSION RESULTFILE [warmup]
    local c=$1 res=$2 store="$WORK/store-$RANDOM-$RANDOM"
    timed "$res" "$FACTORY" build --progress plain --cache "$store" "$WORK/tree/bench-$c.toml"
    if [[ -n ${3:-} ]]; then
        timed "$WORK/noop-$c" "$FACTORY" build --progress plain --cache "$store" "$WORK/tree/bench-$c.toml"
    fi
    du -sb "$store/blobs" | cut -f1 >"$WORK/size-$c"
    rm -rf "$store"
}

if [[ -z $SKIP_PODMAN ]]; then
    podman_conf
    mkdir -p "$WORK/bbroot/bin" && cp /bin/busybox "$WORK/bbroot/bin/" && ln -s busybox "$WORK/bbroot/bin/sh"
    tar -C "$WORK/bbroot" -cf "$WORK/busybox.tar" .
fi

# podman_cmd STORAGE_DIR: the podman command line with private storage under STORAGE_DIR.
podman_cmd() { echo "podman --root $1/root --runroot $1/run --storage-driver overlay --tmpdir $1/tmp"; }

run_podman() { # run_podman RESULTFILE [PUSH_COMPRESSION]
    local res=$1 push=${2:-} st
    st=$WORK/podman-$RANDOM-$RANDOM
    local -a pm
    read -r -a pm <<<"$(podman_cmd "$st")"
    mkdir -p "$st/tmp"
    "${pm[@]}" import -q "$WORK/busybox.tar" localhost/bench-busybox:1 >/dev/null
    if [[ -n $push ]]; then
        # build, then push to an oci: dir with compressed blobs: timed together
        cat >"$st/build-push.sh" <<EOF
set -e
${pm[*]} build -q --timestamp 0 -f $WORK/tree/Containerfile -t localhost/bench:1 $WORK/tree
${pm[*]} push -q --compression-format $push localhost/bench:1 oci:$st/push-out:1
EOF
        timed "$res" bash "$st/build-push.sh"
    else
        timed "$res" "${pm[@]}" build -q --timestamp 0 -f "$WORK/tree/Containerfile" \
            -t localhost/bench:1 "$WORK/tree"
    fi
    "${pm[@]}" rmi -a -f >/dev/null 2>&1 || true
    findmnt -rn -o TARGET | awk -v d="$st/" 'index($0, d) == 1' | sort -r |
        xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$st"
}

log "warm-up (not measured)"
run_factory gzip "$WORK/warmup"
[[ -z $SKIP_PODMAN ]] && run_podman "$WORK/warmup"

for ((i = 1; i <= RUNS; i++)); do
    log "run $i/$RUNS: factory gzip, zstd"
    run_factory gzip "$WORK/factory-gzip" noop
    run_factory zstd "$WORK/factory-zstd" noop
    if [[ -z $SKIP_PODMAN ]]; then
        log "run $i/$RUNS: podman build, podman build + push (gzip, zstd)"
        run_podman "$WORK/podman-build"
        run_podman "$WORK/podman-push-gzip" gzip
        run_podman "$WORK/podman-push-zstd" zstd
    fi
done

log "raw limits"
raw() { # raw NAME CMD: the tar stream of the tree into CMD, RUNS times
    local name=$1 i
    shift
    for ((i = 1; i <= RUNS; i++)); do
        timed "$WORK/raw-$name" bash -c "tar -C '$WORK/tree' -cf - src big.bin | $* >/dev/null"
    done
}
raw tar cat
raw gzip6 gzip -6
raw pigz6 pigz -6 -p2
raw zstd3 zstd -3 -T2 -q
raw sha256 sha256sum

# ---- report ---------------------------------------------------------------------------------
rate() { awk -v mb="$tree_mb" -v s="$1" 'BEGIN { if (s + 0 > 0) printf "%.0f", mb / s; else print "-" }'; }
row() { # row NAME FILE
    [[ -s $2 ]] || return 0
    local t
    t=$(med_time "$2")
    printf '%-28s %9s s %9s MiB/s %9s MiB\n' "$1" "$t" "$(rate "$t")" "$(max_rss_mb "$2")"
}
echo
echo "copy-heavy: $SMALL_FILES files + 1 big file, $tree_mb MiB; median of $RUNS cold runs; $(nproc) CPUs"
printf '%-28s %11s %15s %13s\n' "" "time" "input rate" "peak RSS"
row "factory build (gzip)" "$WORK/factory-gzip"
row "factory build (zstd)" "$WORK/factory-zstd"
row "factory no-op rebuild (gzip)" "$WORK/noop-gzip"
row "factory no-op rebuild (zstd)" "$WORK/noop-zstd"
row "podman build (no compression)" "$WORK/podman-build"
row "podman build + push (gzip)" "$WORK/podman-push-gzip"
row "podman build + push (zstd)" "$WORK/podman-push-zstd"
row "raw: tar -c" "$WORK/raw-tar"
row "raw: tar -c | sha256sum" "$WORK/raw-sha256"
row "raw: tar -c | gzip -6" "$WORK/raw-gzip6"
row "raw: tar -c | pigz -6 -p2" "$WORK/raw-pigz6"
row "raw: tar -c | zstd -3 -T2" "$WORK/raw-zstd3"
echo "store size: gzip $(($(cat "$WORK/size-gzip") / 1024 / 1024)) MiB, zstd $(($(cat "$WORK/size-zstd") / 1024 / 1024)) MiB"
if [[ -z $SKIP_PODMAN ]]; then
    ratio() { awk -v a="$(med_time "$1")" -v b="$(med_time "$2")" 'BEGIN { printf "%.2f", a / b }'; }
    echo "ratio factory/podman (gzip, build + compressed blobs): $(ratio "$WORK/factory-gzip" "$WORK/podman-push-gzip")"
    echo "ratio factory/podman (zstd, build + compressed blobs): $(ratio "$WORK/factory-zstd" "$WORK/podman-push-zstd")"
    echo "ratio factory gzip / podman build (uncompressed):     $(ratio "$WORK/factory-gzip" "$WORK/podman-build")"
fi
echo "ratio factory gzip / raw pigz -6 -p2:                 $(awk -v a="$(med_time "$WORK/factory-gzip")" -v b="$(med_time "$WORK/raw-pigz6")" 'BEGIN { printf "%.2f", a / b }')"
