#!/usr/bin/env bash
# RUN-step benchmark: what a RUN step costs in a cold build, factory against
# `podman build --no-cache --layers`, from the same busybox base image, each step a trivial
# command that writes one small file (so the cost is the step's machinery: the root file system,
# the runtime, the diff, the layer, the cache record).
#
#   bash bench/run-steps.sh            # as root; RUNS=5, STEPS=10 by default
#
# For each tool it builds, RUNS times each, a recipe of 1 RUN step and one of STEPS RUN steps
# from an empty cache (factory: a fresh copy of a store that holds only the base image; podman:
# --no-cache with the base in its storage), and reports the medians and the cost of one more
# step: (T[STEPS] - T[1]) / (STEPS - 1). Both work on a private tmpfs; podman uses runc,
# factory its default runtime (it says which).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-5}
STEPS=${STEPS:-10}
TIMEOUT=${TIMEOUT:-300}

[[ $(id -u) -eq 0 ]] || { echo "run-steps: run as root (private tmpfs, rootful podman)" >&2; exit 1; }
[[ -x $FACTORY ]] || { echo "run-steps: no factory binary at $FACTORY" >&2; exit 1; }
command -v podman >/dev/null || { echo "run-steps: podman missing (scripts/setup.sh)" >&2; exit 1; }
((STEPS >= 2)) || { echo "run-steps: STEPS must be at least 2" >&2; exit 1; }

WORK=$(mktemp -d /tmp/factory-run-steps.XXXXXX)
mount -t tmpfs -o size=4g,mode=0755 tmpfs "$WORK"
pm=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay
    --tmpdir "$WORK/podman/tmp")
cleanup() {
    cd /
    "${pm[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    findmnt -rn -o TARGET | awk -v d="$WORK/" 'index($0, d) == 1' | sort -r |
        xargs -r -n1 umount -l 2>/dev/null || true
    umount -l "$WORK" 2>/dev/null || true
    rmdir "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

# ---- the base image, written by factory and read by both ----------------------------------------
bb=$(dirname "$(readlink -f /bin/busybox)")
mkdir -p "$WORK/ctx"
cat >"$WORK/ctx/base.toml" <<EOF
[image]
name = "bench-base"
[contexts]
busybox = "$bb"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]
[[step]]
run = ["/bin/busybox", "--install", "-s", "/bin"]
[config]
env = { PATH = "/bin" }
EOF
"$FACTORY" build --progress plain --cache "$WORK/base-store" -o "oci:$WORK/base:1" \
    -o "docker-archive:$WORK/base.tar:localhost/bench-base:1" "$WORK/ctx/base.toml" >/dev/null 2>"$WORK/base.log" ||
    { tail -n 20 "$WORK/base.log" >&2; exit 1; }
runtime_line=$(grep -m1 '^runtime: ' "$WORK/base.log" || true)

# A store that holds only the base (imported once), copied before every factory build.
recipe() { # recipe N: a recipe (and a Containerfile) of N RUN steps
    local n=$1 i
    {
        echo '[image]'
        echo "name = \"steps$n\""
        echo '[base]'
        echo "image = \"oci:$WORK/base:1\""
        for i in $(seq 1 "$n"); do
            echo '[[step]]'
            echo "run = \"echo $i > /f$i\""
        done
    } >"$WORK/ctx/steps$n.toml"
    {
        echo "FROM localhost/bench-base:1"
        for i in $(seq 1 "$n"); do echo "RUN echo $i > /f$i"; done
    } >"$WORK/ctx/Containerfile.$n"
}
recipe 1
recipe "$STEPS"
printf '*.toml\nContainerfile.*\n' | tee "$WORK/ctx/.factoryignore" >"$WORK/ctx/.containerignore"
"$FACTORY" build --cache "$WORK/template" "$WORK/ctx/steps1.toml" >/dev/null 2>&1
rm -rf "$WORK/template/actions" "$WORK/template/steps" # the base stays imported, no step record

podman_conf
mkdir -p "$WORK/podman/tmp"
"${pm[@]}" load -q -i "$WORK/base.tar" >/dev/null

# ---- measuring ----------------------------------------------------------------------------------

factory_build() { # factory_build N
    rm -rf "$WORK/store" && cp -a "$WORK/template" "$WORK/store"
    bench_seconds "$FACTORY" build --cache "$WORK/store" "$WORK/ctx/steps$1.toml"
}
podman_build() { # podman_build N
    bench_seconds "${pm[@]}" build -q --no-cache --layers --timestamp 0 -f "$WORK/ctx/Containerfile.$1" \
        -t "localhost/steps$1:1" "$WORK/ctx"
}

log "warm-up: one build of each (not counted)"
factory_build "$STEPS" >/dev/null
podman_build "$STEPS" >/dev/null
for tool in factory podman; do : >"$WORK/$tool.1" && : >"$WORK/$tool.$STEPS"; done
for i in $(seq 1 "$RUNS"); do
    log "run $i/$RUNS"
    for n in 1 "$STEPS"; do
        for tool in factory podman; do "${tool}_build" "$n" >>"$WORK/$tool.$n"; done
    done
done

# ---- report -------------------------------------------------------------------------------------
row() { printf '%-34s %10s %10s %8s\n' "$@"; }
echo
echo "run-steps: cold builds from the same busybox base, median of $RUNS (seconds); load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n $runtime_line ]] && echo "factory: ${runtime_line}; podman: runc"
row "" factory podman ratio
declare -A med
for tool in factory podman; do
    for n in 1 "$STEPS"; do med[$tool.$n]=$(median 3 <"$WORK/$tool.$n"); done
    med[$tool.step]=$(awk -v a="${med[$tool.1]}" -v b="${med[$tool.$STEPS]}" -v n="$STEPS" \
        'BEGIN { printf "%.3f", (b - a) / (n - 1) }')
done
for key in 1 "$STEPS" step; do
    case $key in
        1) label="1 RUN step" ;;
        step) label="one more RUN step" ;;
        *) label="$STEPS RUN steps" ;;
    esac
    f=${med[factory.$key]} p=${med[podman.$key]}
    row "$label" "$f" "$p" "$(awk -v f="$f" -v p="$p" 'BEGIN { printf "%.2f", f / p }')"
done
