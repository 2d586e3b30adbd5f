#!/usr/bin/env bash
# git step benchmark: a repository generated here (COMMITS commits, FILES files) served by
# `git daemon` on 127.0.0.1, and a recipe whose only step is `git = { url, ref = "main" }`.
#
#   bash bench/git.sh                              # 5,000 commits, 20,000 files, RUNS=3
#   COMMITS=500 FILES=2000 RUNS=3 bash bench/git.sh   # a quick run
#
# Measured (median of RUNS, each in a fresh store and fresh directories):
#   floor     git clone --mirror + git archive COMMIT | tar -x (what any tool must at least do)
#   shallow   git clone --bare --depth=1 + git archive | tar -x (the floor without the history:
#             what factory's first build fetches; shown, not a target)
#   first     factory build in an empty store (mirror, tree, gzip layer)
#   one-new   after one new upstream commit (incremental fetch, the step rebuilt)
#   nothing   nothing changed (one ls-remote, the step cached)
#   locked    nothing changed, `build --locked` after `factory lock` (no ls-remote)
# each in wall seconds and in CPU-seconds (user + sys, the server's side not counted).
# Targets (issue 12): first ≤ 1.2 × floor; one-new ≤ 0.2 × first; nothing ≤ 100 ms + one
# ls-remote (the ls-remote alone is measured too).
#   podman    podman build of `RUN git clone URL /src` with --no-cache (its cache keys the RUN
#             by its text, so a new upstream commit is only seen without the cache), on a base
#             image made here of the host's git and the libraries it links (no registry to pull
#             one from). SKIP_PODMAN=1 leaves it out; as root.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-3}
COMMITS=${COMMITS:-5000}
FILES=${FILES:-20000}
TIMEOUT=${TIMEOUT:-900}
SKIP_PODMAN=${SKIP_PODMAN:-0}
[[ -x $FACTORY ]] || { echo "git: no factory binary at $FACTORY" >&2; exit 1; }
if [[ $SKIP_PODMAN != 1 ]]; then
    command -v podman >/dev/null || { echo "git: podman missing (scripts/setup.sh; or SKIP_PODMAN=1)" >&2; exit 1; }
    [[ $(id -u) -eq 0 ]] || { echo "git: podman's row runs as root (or SKIP_PODMAN=1)" >&2; exit 1; }
fi

WORK=$(mktemp -d /tmp/factory-bench-git.XXXXXX)
# On a tmpfs when root: creating thousands of files right after deleting as many is very slow
# on these disks (MACHINE-NOTES.md "The disk and memory"), which would measure the disk.
[[ $(id -u) -eq 0 ]] && mount -t tmpfs -o size=6g,mode=0755 tmpfs "$WORK"
daemon=
cleanup() {
    [[ -n $daemon ]] && kill "$daemon" 2>/dev/null
    cd /
    # podman's overlay mounts first, then the tmpfs.
    findmnt -rn -o TARGET | awk -v d="$WORK/" 'index($0, d) == 1' | sort -r |
        xargs -r -n1 umount -l 2>/dev/null || true
    umount -l "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b
export GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b

log "load: $(uptime | sed 's/.*load average: //')"
log "generating $FILES files and $COMMITS commits"
up=$WORK/up
git init -q -b main "$up"
git -C "$up" config gc.auto 0
python3 - "$up" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
for i in range(n):
    d = os.path.join(root, "src", f"m{i % 200:03d}", f"p{i % 17:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(("".join(rng.choice("abcdefghij \n") for _ in range(rng.randint(200, 12000)))))
PY
git -C "$up" add -A
git -C "$up" commit -q -m init
# The history: COMMITS-1 more commits, each changing one file (fast-import, not a loop of
# commits, so generating stays quick).
python3 - "$COMMITS" "$FILES" <<'PY' | git -C "$up" fast-import --quiet
import sys
commits, files = int(sys.argv[1]), int(sys.argv[2])
for c in range(1, commits):
    i = (c * 7919) % files
    path = f"src/m{i % 200:03d}/p{i % 17:02d}/f{i:05d}.txt"
    data = f"change {c}\n".encode()
    msg = f"change {c}\n".encode()
    print("commit refs/heads/main")
    print(f"committer b <b@b> {1600000000 + c} +0000")
    print(f"data {len(msg)}"); sys.stdout.flush(); sys.stdout.buffer.write(msg); print()
    if c == 1:
        print("from refs/heads/main^0")
    print(f"M 100644 inline {path}")
    print(f"data {len(data)}"); sys.stdout.flush(); sys.stdout.buffer.write(data); print()
PY
# fast-import moved the branch, not the work tree: check the tip out, or the first `commit -a`
# below would put back every file the history changed.
git -C "$up" reset -q --hard
git -C "$up" gc -q
log "$(git -C "$up" rev-list --count main) commits, $(git -C "$up" ls-files | wc -l) files, $(du -sh "$up/.git" | cut -f1) of objects"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
git daemon --reuseaddr --listen=127.0.0.1 --port="$port" --export-all --base-path="$WORK" "$WORK" &
daemon=$!
url=git://127.0.0.1:$port/up
for _ in $(seq 1 100); do git ls-remote "$url" >/dev/null 2>&1 && break; sleep 0.1; done

cat >"$WORK/recipe.toml" <<EOF2
[image]
name = "bench-git"
[[step]]
git = { url = "$url", ref = "main", dest = "/src" }
EOF2

pm=()
if [[ $SKIP_PODMAN != 1 ]]; then
    podman_conf
    pm=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay
        --tmpdir "$WORK/podman/tmp")
    mkdir -p "$WORK/podman/tmp" "$WORK/gitroot/tmp" "$WORK/podctx"
    # The base: git, its helpers and templates, and every library ldd names for them.
    libs=$(ldd /usr/bin/git /usr/lib/git-core/git-remote-http 2>/dev/null |
        awk '$2 == "=>" && $3 ~ /^\// { print substr($3, 2) } $1 ~ /^\/.*[^:]$/ { print substr($1, 2) }' |
        sort -u)
    # shellcheck disable=SC2086 # one path a word
    tar -C / -chf - usr/bin/git usr/lib/git-core usr/share/git-core $libs | tar -C "$WORK/gitroot" -xf -
    tar -C "$WORK/gitroot" -cf "$WORK/gitroot.tar" .
    "${pm[@]}" import -q "$WORK/gitroot.tar" localhost/bench-git-base:1 >/dev/null
    cat >"$WORK/podctx/Containerfile" <<EOF2
FROM localhost/bench-git-base:1
ENV GIT_CONFIG_NOSYSTEM=1 HOME=/tmp
RUN ["/usr/bin/git", "clone", "--quiet", "$url", "/src"]
EOF2
fi

# timed NAME CMD...: bench_seconds CMD, and the CPU-seconds (user + sys of CMD and every child
# it waited for; not the git daemon's side) appended to $WORK/cpu.NAME. On a shared machine the
# CPU-seconds are the steadier figure.
timed() {
    local name=$1
    shift
    bench_seconds /usr/bin/time -f '%U %S' -o "$WORK/time.out" "$@"
    awk '{ printf "%.2f\n", $1 + $2 }' "$WORK/time.out" >>"$WORK/cpu.$name"
}

floor=() shallow=() podman=() first=() onenew=() nothing=() lsremote=() locked=()
for run in $(seq 1 "$RUNS"); do
    d=$WORK/run$run
    mkdir -p "$d"
    floor+=("$(timed floor bash -c "git clone -q --mirror '$url' '$d/floor.git' && mkdir '$d/floor' && git --git-dir='$d/floor.git' archive main | tar -x -C '$d/floor'")")
    shallow+=("$(timed shallow bash -c "git clone -q --bare --depth=1 --branch main '$url' '$d/shallow.git' && mkdir '$d/shallow' && git --git-dir='$d/shallow.git' archive main | tar -x -C '$d/shallow'")")
    if [[ $SKIP_PODMAN != 1 ]]; then
        podman+=("$(timed podman "${pm[@]}" build -q --no-cache --network host --timestamp 0 \
            -f "$WORK/podctx/Containerfile" -t localhost/bench-git:1 "$WORK/podctx")")
        "${pm[@]}" rmi -f localhost/bench-git:1 >/dev/null
    fi
    first+=("$(timed first "$FACTORY" build --cache "$d/store" --progress plain "$WORK/recipe.toml")")
    echo "run $run $(date +%s%N)" >>"$up/src/m000/p00/f00000.txt"
    git -C "$up" commit -q -am "run $run"
    onenew+=("$(timed onenew "$FACTORY" build --cache "$d/store" --progress plain "$WORK/recipe.toml")")
    nothing+=("$(timed nothing "$FACTORY" build --cache "$d/store" --progress plain "$WORK/recipe.toml")")
    lsremote+=("$(timed lsremote git ls-remote "$url" refs/heads/main)")
    "$FACTORY" lock --cache "$d/store" "$WORK/recipe.toml" >/dev/null
    locked+=("$(timed locked "$FACTORY" build --cache "$d/store" --progress plain --locked "$WORK/recipe.toml")")
    rm -rf "$d" "$WORK/recipe.toml.lock"
    log "run $run: floor ${floor[-1]} s,${podman:+ podman ${podman[-1]} s,} first ${first[-1]} s, one new commit ${onenew[-1]} s, nothing ${nothing[-1]} s (ls-remote ${lsremote[-1]} s), nothing --locked ${locked[-1]} s"
done
m() { printf '%s\n' "$@" | median; }
f=$(m "${floor[@]}") sf=$(m "${shallow[@]}") a=$(m "${first[@]}") b=$(m "${onenew[@]}") c=$(m "${nothing[@]}") l=$(m "${lsremote[@]}") k=$(m "${locked[@]}")
cpu() { median 2 <"$WORK/cpu.$1"; }
printf '\n%-36s %10s %10s\n' "git step, $COMMITS commits, $FILES files" "median s" "CPU s"
printf '%-36s %10s %10s\n' "floor: clone --mirror + archive|tar" "$f" "$(cpu floor)" \
    "shallow: clone --depth=1 + archive|tar" "$sf" "$(cpu shallow)" \
    "factory first build" "$a" "$(cpu first)" \
    "factory, one new upstream commit" "$b" "$(cpu onenew)" \
    "factory, nothing changed" "$c" "$(cpu nothing)" "git ls-remote alone" "$l" "$(cpu lsremote)" \
    "factory --locked, nothing changed" "$k" "$(cpu locked)"
[[ $SKIP_PODMAN == 1 ]] ||
    printf '%-36s %10s %10s\n' "podman build, RUN git clone" "$(m "${podman[@]}")" "$(cpu podman)"
log "load: $(uptime | sed 's/.*load average: //')"
awk -v f="$f" -v sf="$sf" -v a="$a" -v b="$b" -v c="$c" -v l="$l" 'BEGIN {
    printf "first / floor = %.2f (target <= 1.2); one-new / first = %.2f (target <= 0.2); nothing - ls-remote = %.0f ms (target <= 100)\n",
        a / f, b / a, (c - l) * 1000
    printf "first / shallow floor = %.2f (not a target: the layer is gzip, the floor writes files)\n", a / sf }'
awk -v f="$(cpu floor)" -v a="$(cpu first)" -v b="$(cpu onenew)" 'BEGIN {
    printf "CPU-seconds: first / floor = %.2f; one-new / first = %.2f\n", a / f, b / a }'
[[ $SKIP_PODMAN == 1 ]] || awk -v a="$a" -v b="$b" -v p="$(m "${podman[@]}")" 'BEGIN {
    printf "factory first / podman = %.2f; factory one-new / podman (whose cache misses a new commit: --no-cache) = %.2f\n", a / p, b / p }'
