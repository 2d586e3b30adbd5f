#!/usr/bin/env bash
# Start-to-exit latency of a container running `true`, warm: factory shell/run against podman
# run/exec, in the same run, on the same image (busybox from busybox-static plus a context of
# CONTEXT_FILES small files, so the cached-recipe row has something to check).
#
#   bash bench/shell-latency.sh             # as root; FACTORY defaults to build/factory
#   RUNS=10 bash bench/shell-latency.sh
#
# Rows (hyperfine -N --warmup 3 --runs RUNS; medians; stdin is not a terminal):
#   factory shell IMG -- true                  the project mount, passwd, HOME: a whole shell
#   factory run IMG -- true
#   factory run IMG -- true, FACTORY_RUNTIME=runc   podman's runtime (factory's default may be crun)
#   factory run RECIPE.toml -- true            the recipe's image is cached: a no-op build first
#   factory shell IMG -- true, joining         a second shell joining a running environment:
#                                              only when `factory ps` exists, else n/a
#   podman run --rm IMG true                   rootful, default (bridge) network
#   podman run --rm --network none IMG true
#   podman exec CTR true                       into a running container
# podman runs with private storage on the same tmpfs (containers.conf as tests/lib.sh's
# podman_setup: runc, cgroupfs, the ulimits this machine allows). The ratio column divides each
# median by `podman run --rm --network none`'s, podman's cheapest way to start a container
# (factory's default, the host's network, needs no setup either).
#
# Then, with strace, what `factory run RECIPE.toml -- true` does to the context's files when
# the image is cached: opens of files under the context (reading = hashing) against stat calls.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
CONTEXT_FILES=${CONTEXT_FILES:-2000}
TIMEOUT=${TIMEOUT:-600} # for each hyperfine invocation

[[ $(id -u) -eq 0 ]] || { echo "shell-latency: run as root (factory shell, rootful podman)" >&2; exit 1; }
[[ -x $FACTORY ]] || { echo "shell-latency: no factory binary at $FACTORY" >&2; exit 1; }
for tool in hyperfine podman runc jq strace python3; do
    command -v "$tool" >/dev/null || { echo "shell-latency: missing $tool (scripts/setup.sh)" >&2; exit 1; }
done
bb=$(readlink -f /bin/busybox)
[[ -x $bb ]] || { echo "shell-latency: busybox-static missing (scripts/setup.sh)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/factory-shell-latency.XXXXXX)
mount -t tmpfs -o size=2g,mode=0755 tmpfs "$WORK"
pm=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay
    --tmpdir "$WORK/podman/tmp")
JOIN_PID=
cleanup() {
    cd /
    if [[ -n $JOIN_PID ]]; then
        kill -TERM "$JOIN_PID" 2>/dev/null || true
        wait "$JOIN_PID" 2>/dev/null || true
    fi
    "${pm[@]}" rm -f -t 0 lat-ctr >/dev/null 2>&1
    findmnt -rn -o TARGET | awk -v d="$WORK/" 'index($0, d) == 1' | sort -r |
        xargs -r -n1 umount -l 2>/dev/null
    umount -l "$WORK" 2>/dev/null
    rmdir "$WORK" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the image --------------------------------------------------------------------------------
log "image: busybox + $CONTEXT_FILES context files"
mkdir -p "$WORK/ctx" "$WORK/podman/tmp"
python3 - "$WORK/ctx" "$CONTEXT_FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 50))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.txt" % i), "w") as f:
        f.write(("line %d of a small source file\n" % i) * 20)
PY
recipe=$WORK/latency.toml
cat >"$recipe" <<EOF
[image]
name = "latency"

[contexts]
busybox = "$(dirname "$bb")"
data = "$WORK/ctx"

[base]
image = "scratch"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "--install", "-s", "/bin"]

[[step]]
copy = [{ context = "data", src = ".", dest = "/data/" }]

[config]
env = { PATH = "/bin" }
EOF
store=$WORK/store
"$FACTORY" build --progress plain --cache "$store" "$recipe" >"$WORK/build.log" 2>&1 ||
    { tail -n 20 "$WORK/build.log" >&2; exit 1; }
runtime_line=$(grep -m1 '^runtime: ' "$WORK/build.log" || echo "runtime: ?")
# The stat cache records a file only once its ctime is 2 s older than the hashing (docs/cache.md,
# racily clean files): until then every no-op build hashes the fresh context again. Measure the
# steady state a developer sees: wait that out, and let one more build record the files.
sleep 2.5
"$FACTORY" build --progress plain --cache "$store" "$recipe" >"$WORK/build.log" 2>&1 ||
    { tail -n 20 "$WORK/build.log" >&2; exit 1; }
"$FACTORY" export --cache "$store" latency:latest "docker-archive:$WORK/latency.tar:localhost/latency:latest" >/dev/null

podman_conf
"${pm[@]}" load -q -i "$WORK/latency.tar" >/dev/null
img=localhost/latency:latest
"${pm[@]}" run -d --name lat-ctr --network none "$img" sleep 100000 >/dev/null

# ---- measuring --------------------------------------------------------------------------------
names=()
cmds=()
add() { names+=("$1"); cmds+=("$2"); }
f="$FACTORY --cache $store"
p="${pm[*]}"
add "factory shell IMG -- true" "$f shell latency -- true"
add "factory run IMG -- true" "$f run latency -- true"
add "factory run IMG -- true, FACTORY_RUNTIME=runc" "env FACTORY_RUNTIME=runc $f run latency -- true"
add "factory run RECIPE.toml -- true (cached)" "$f run $recipe -- true"
add "podman run --rm IMG true" "$p run --rm $img true"
add "podman run --rm --network none IMG true" "$p run --rm --network none $img true"
add "podman exec CTR true" "$p exec lat-ctr true"

args=()
for i in "${!names[@]}"; do
    args+=(-n "${names[i]}" "${cmds[i]}")
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Each timed run starts 0.3 s after the previous one, as a person's commands do: a shell's
# environment ends in the background after its last shell (docs/shell.md), and back to back the
# next start would wait for that teardown instead.
log "hyperfine: ${#names[@]} commands, $RUNS runs each after $WARMUP warm-ups; load: $load_before"
timeout "$TIMEOUT" hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic --prepare 'sleep 0.3' \
    --export-json "$WORK/latency.json" "${args[@]}" >"$WORK/hyperfine.log" 2>&1 ||
    { tail -n 30 "$WORK/hyperfine.log" >&2; exit 1; }

# A second shell joining a running environment (docs/shell.md "Environments"), measured while
# the first one runs; a factory without environments answers `ps --help` with its top-level
# help, hence the check of the usage line.
joining="factory shell IMG -- true (joining a running environment)"
if "$FACTORY" ps --help 2>/dev/null | grep -Eq '^Usage: .*[ /]factory ps( |$)'; then
    "$FACTORY" --cache "$store" shell latency -- sleep 1000 </dev/null >/dev/null 2>&1 &
    JOIN_PID=$!
    for _ in $(seq 1 100); do
        "$FACTORY" --cache "$store" ps 2>/dev/null | grep -q latency && break
        sleep 0.1
    done
    log "hyperfine: $joining"
    timeout "$TIMEOUT" hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic \
        --prepare 'sleep 0.3' --export-json "$WORK/join.json" -n "$joining" "$f shell latency -- true" \
        >>"$WORK/hyperfine.log" 2>&1 || { tail -n 30 "$WORK/hyperfine.log" >&2; exit 1; }
    "$FACTORY" --cache "$store" shell --stop latency >/dev/null 2>&1 || true
    wait "$JOIN_PID" 2>/dev/null || true
    JOIN_PID=
    jq -s '{results: (.[0].results + .[1].results)}' "$WORK/latency.json" "$WORK/join.json" \
        >"$WORK/all.json" && mv "$WORK/all.json" "$WORK/latency.json"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- strace: the cached recipe's context ------------------------------------------------------
log "strace: factory run RECIPE.toml -- true, image cached"
strace -f -qq -o "$WORK/strace.log" -e trace=open,openat,openat2,stat,lstat,newfstatat,statx \
    "$FACTORY" --cache "$store" run "$recipe" -- true
ctx_calls=$(grep -F "\"$WORK/ctx" "$WORK/strace.log" || true)
count() { grep -Ec -- "$1" <<<"$ctx_calls" || true; }
opens_files=$(grep -E 'open(at2?)?\(' <<<"$ctx_calls" | grep -vc 'O_DIRECTORY' || true)
opens_dirs=$(count 'open(at2?)?\(.*O_DIRECTORY')
stats=$(count '(stat|lstat|newfstatat|statx)\(')

# ---- report -----------------------------------------------------------------------------------
echo
echo "shell-latency: warm start-to-exit of \`true\`, median of $RUNS (hyperfine -N, $WARMUP warm-ups)"
echo "machine: $(nproc) cores; load average (1/5/15 min) before: $load_before, after: $load_after"
echo "factory's default runtime here (its build says): ${runtime_line#runtime: }; podman: runc"
jq -r --arg joining "$joining" '
    (.results[] | select(.command == "podman run --rm --network none IMG true") | .median) as $base
    | (.results[] | [.command, (.median * 1000 | floor | tostring) + " ms",
                     (.median / $base * 100 | round / 100 | tostring)])
    , (if any(.results[]; .command == $joining) then empty else [$joining, "n/a", "n/a"] end)
    | @tsv' "$WORK/latency.json" |
    awk -F'\t' 'BEGIN { printf "%-62s %10s %8s\n", "command", "median", "÷ podman --network none" }
                { printf "%-62s %10s %8s\n", $1, $2, $3 }'
echo
echo "strace of \`factory run RECIPE.toml -- true\` (cached image), calls on the context's paths"
echo "($CONTEXT_FILES files in $(find "$WORK/ctx" -type d | wc -l) directories):"
echo "  open of a file (reading, i.e. hashing): $opens_files"
echo "  open of a directory (listing):          $opens_dirs"
echo "  stat/lstat/newfstatat/statx:            $stats"
