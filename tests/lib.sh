# Shared helpers for the black-box tests (tests/integration/*.sh, tests/interop/*.sh).
# Source it first thing:   source "$(dirname "$0")/../lib.sh"
#
# Environment (set by ctest; defaults let a script run by hand from a build in ./build):
#   FACTORY             the binary under test
#   FACTORY_SOURCE_DIR  the source tree (recipes/, tests/)
#   CI=true             a missing peer tool is a failure, not a skip
#   KEEP_TEST_DIR=1     keep the temp dir even when the test passes
#   FACTORY_TEST_TMPFS=1  the test dir on /dev/shm when it has room (the Debian tests)
#
# Every test gets a fresh temp dir ($TEST_DIR, also the cwd), removed when the test passes and
# kept (its path printed) when it fails. The store defaults to $TEST_DIR/store through
# FACTORY_CACHE, HOME points into the temp dir, so no test touches the user's cache.
# Exit codes: 0 pass, 1 fail, 77 skip (ctest needs SKIP_RETURN_CODE 77 to show it as skipped).

set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

FACTORY_SOURCE_DIR=${FACTORY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
FACTORY=${FACTORY:-$FACTORY_SOURCE_DIR/build/factory}
export FACTORY FACTORY_SOURCE_DIR
TEST_NAME=$(basename "$0" .sh)
readonly SKIP=77

if [[ ! -x $FACTORY ]]; then
    echo "FAIL: $TEST_NAME: no factory binary at $FACTORY (set FACTORY)" >&2
    exit 1
fi

# FACTORY_TEST_TMPFS=1 (set by tests/CMakeLists.txt on the tests that bootstrap Debian): the test
# dir, its stores and mmdebstrap's scratch go to /dev/shm when it has 6 GiB free. dpkg unpacking
# tens of thousands of small files waits on the disk here (a nodejs + npm base took 264 s on
# /tmp and 150 s on tmpfs, for 56 s of CPU).
if [[ -n ${FACTORY_TEST_TMPFS:-} && -d /dev/shm && -w /dev/shm ]] &&
    (($(df --output=avail -k /dev/shm 2>/dev/null | tail -n 1) >= 6 * 1024 * 1024)); then
    export TMPDIR=/dev/shm
fi
TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/factory-test.$TEST_NAME.XXXXXX")
chmod 0755 "$TEST_DIR" # other users (nobody, in the reproducibility test) must reach it
export FACTORY_CACHE="$TEST_DIR/store"
export HOME="$TEST_DIR/home"
unset XDG_CACHE_HOME SOURCE_DATE_EPOCH
mkdir -p "$HOME"
cd "$TEST_DIR"

# Commands to run when the test exits (before the temp dir goes), e.g. stopping a server.
_LIB_ON_EXIT=()
_lib_on_exit() { _LIB_ON_EXIT+=("$1"); }

_lib_cleanup() {
    local rc=$? c
    set +e
    for c in "${_LIB_ON_EXIT[@]}"; do
        eval "$c"
    done
    _lib_umount_under "$TEST_DIR"
    if [[ $rc -eq 0 || $rc -eq $SKIP ]] && [[ -z ${KEEP_TEST_DIR:-} ]]; then
        rm -rf "$TEST_DIR"
    else
        echo "$TEST_NAME: exit $rc; temp dir kept: $TEST_DIR" >&2
    fi
    exit "$rc"
}
trap _lib_cleanup EXIT

# Unmounts whatever podman (overlay storage) left mounted below a directory, deepest first.
_lib_umount_under() {
    local dir=$1 m
    [[ -r /proc/self/mountinfo ]] || return 0
    while read -r m; do
        umount -l "$(printf '%b' "$m")" 2>/dev/null || true # mountinfo writes ' ' as \040
    done < <(D="${dir// /\\040}/" awk 'index($5, ENVIRON["D"]) == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r)
}

# ---- outcome --------------------------------------------------------------------------------

fail() {
    echo "FAIL: $TEST_NAME: $*" >&2
    exit 1
}

skip() {
    echo "SKIP: $TEST_NAME: $*" >&2
    exit "$SKIP"
}

# A step heading in the log, so a failure says which part of a long test broke, with the
# seconds since the test started, so the log also says where a slow test spends its time.
step() { echo "--- $TEST_NAME: $* (at ${SECONDS}s)" >&2; }

# need CMD...: every command must exist. Missing → skip, or fail when CI=true.
need() {
    local c missing=()
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ ${CI:-} == true ]]; then
        fail "required tool(s) missing in CI: ${missing[*]} (run scripts/setup.sh)"
    fi
    skip "required tool(s) missing: ${missing[*]}"
}

# Root means uid 0 with CAP_SYS_ADMIN (mounts, namespaces): uid 0 inside a container — a
# `factory shell --root` of recipes/dev.toml — has neither, and these tests skip there too.
privileged() {
    local caps
    caps=$(awk '/^CapEff:/ {print $2}' /proc/self/status 2>/dev/null)
    [[ $(id -u) -eq 0 && -n $caps ]] && (((0x$caps >> 21) & 1))
}
need_root() {
    privileged && return 0
    [[ ${CI:-} == true ]] && fail "must run as root (with CAP_SYS_ADMIN) in CI"
    skip "needs root with CAP_SYS_ADMIN"
}

# ---- assertions -----------------------------------------------------------------------------

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
    if [[ "$1" != "$2" ]]; then
        fail "${3:-values differ}"$'\n'"  expected: $1"$'\n'"  actual:   $2"
    fi
}

assert_ne() {
    if [[ "$1" == "$2" ]]; then
        fail "${3:-values should differ}: both are: $1"
    fi
}

# assert_match REGEX ACTUAL [WHAT]  (bash ERE, whole-string unless the regex says otherwise)
assert_match() {
    if ! [[ "$2" =~ $1 ]]; then
        fail "${3:-no match}"$'\n'"  expected to match: $1"$'\n'"  actual:            $2"
    fi
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
    if [[ "$1" != *"$2"* ]]; then
        fail "${3:-missing text}"$'\n'"  expected to contain: $2"$'\n'"  actual: $1"
    fi
}

assert_not_contains() {
    if [[ "$1" == *"$2"* ]]; then
        fail "${3:-unexpected text}"$'\n'"  should not contain: $2"$'\n'"  actual: $1"
    fi
}

assert_exists() { [[ -e $1 || -L $1 ]] || fail "expected to exist: $1"; }
assert_missing() { [[ ! -e $1 && ! -L $1 ]] || fail "expected not to exist: $1"; }

# ---- running factory ------------------------------------------------------------------------

# run_factory ARGS...: runs the binary without stopping the test; sets RC, OUT (stdout) and
# ERR (stderr); the full streams stay in $TEST_DIR/last.{stdout,stderr}.
run_factory() {
    RC=0
    "$FACTORY" "$@" >"$TEST_DIR/last.stdout" 2>"$TEST_DIR/last.stderr" || RC=$?
    # shellcheck disable=SC2034 # for the tests
    OUT=$(cat "$TEST_DIR/last.stdout")
    ERR=$(cat "$TEST_DIR/last.stderr")
}

_show_last() {
    echo "  command: factory $*"
    echo "  exit:    $RC"
    echo "  stdout (last 20 lines):"
    tail -n 20 "$TEST_DIR/last.stdout" | sed 's/^/    /'
    echo "  stderr (last 20 lines):"
    tail -n 20 "$TEST_DIR/last.stderr" | sed 's/^/    /'
}

# expect_ok ARGS...: factory must exit 0.
expect_ok() {
    run_factory "$@"
    [[ $RC -eq 0 ]] || fail "factory exited $RC, expected 0"$'\n'"$(_show_last "$@")"
}

# expect_exit CODE ARGS...: factory must exit with CODE and print one `factory: error:` line.
expect_exit() {
    local code=$1
    shift
    run_factory "$@"
    [[ $RC -eq $code ]] || fail "factory exited $RC, expected $code"$'\n'"$(_show_last "$@")"
    if [[ $code -ne 0 ]]; then
        assert_match '(^|'$'\n'')factory: error: ' "$ERR" "stderr lacks 'factory: error: '"
    fi
}

# The error line of the last run (the first line starting with "factory: error: ").
error_line() { grep -m1 '^factory: error: ' "$TEST_DIR/last.stderr" || true; }

# last_line: the last line the previous run printed on stdout.
last_line() { tail -n 1 "$TEST_DIR/last.stdout"; }

readonly DIGEST_RE='sha256:[0-9a-f]{64}'

# build ARGS...: `factory build ARGS`, must succeed; checks the stdout contract (last line
# `NAME:TAG sha256:<hex>`) and prints the digest.
build() {
    expect_ok build "$@"
    local line
    line=$(last_line)
    assert_match "^[^ ]+:[^ ]+ $DIGEST_RE\$" "$line" "last stdout line of factory build"
    echo "${line##* }"
}

# ---- recipes and trees ----------------------------------------------------------------------

# write FILE: writes stdin to FILE, creating parent directories.
write() {
    mkdir -p "$(dirname "$1")"
    cat >"$1"
}

# The host directory holding busybox (from the busybox-static package), for a [contexts] entry.
busybox_context() {
    local bb
    bb=$(readlink -f /bin/busybox 2>/dev/null || true)
    [[ -x $bb ]] || { [[ ${CI:-} == true ]] && fail "busybox-static missing"; skip "busybox-static missing"; }
    dirname "$bb"
}

# busybox_recipe NAME: a recipe whose first step copies busybox into a scratch image, for tests
# that need something runnable. Usage: { busybox_recipe NAME; cat <<EOF …steps… EOF; } >f.toml
busybox_recipe() {
    local bb
    bb=$(busybox_context)
    cat <<EOF
[image]
name = "$1"

[contexts]
busybox = "$bb"

[base]
image = "scratch"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]
EOF
}

# ---- OCI layouts (jq) -----------------------------------------------------------------------

# layout_digest DIR REF: the manifest digest that DIR/index.json names REF
# (org.opencontainers.image.ref.name); empty when there is none.
layout_digest() {
    jq -r --arg ref "$2" \
        '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $ref) | .digest][0] // empty' \
        "$1/index.json"
}

# blob DIR DIGEST: the path of a blob in a layout.
blob() { echo "$1/blobs/${2%%:*}/${2#*:}"; }

# verify_layout DIR: every blob's sha256 matches its name; index.json and oci-layout exist.
verify_layout() {
    local dir=$1 f name actual
    assert_exists "$dir/oci-layout"
    assert_exists "$dir/index.json"
    assert_eq '1.0.0' "$(jq -r .imageLayoutVersion "$dir/oci-layout")" "$dir/oci-layout version"
    for f in "$dir"/blobs/sha256/*; do
        [[ -f $f ]] || continue
        name=$(basename "$f")
        actual=$(sha256sum "$f" | cut -d' ' -f1)
        assert_eq "$name" "$actual" "blob content matches its name ($f)"
    done
}

# manifest_json DIR DIGEST / config_json DIR DIGEST
manifest_json() { cat "$(blob "$1" "$2")"; }
config_digest() { jq -r .config.digest "$(blob "$1" "$2")"; }
layer_digests() { jq -r '.layers[].digest' "$(blob "$1" "$2")"; }

# ---- podman, isolated -----------------------------------------------------------------------

# podman_setup: defines `pm` (podman with storage, runroot, config and tmp under $TEST_DIR, so a
# test never touches the system's storage). MACHINE-NOTES: default ulimits fail here, crun
# refuses hybrid cgroups; runc works.
podman_setup() {
    need podman runc
    need_root
    mkdir -p "$TEST_DIR/podman/tmp"
    cat >"$TEST_DIR/podman/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF="$TEST_DIR/podman/containers.conf"
    # Registries config without search registries: a short name never leaves the machine.
    cat >"$TEST_DIR/podman/registries.conf" <<'EOF'
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
    export CONTAINERS_REGISTRIES_CONF="$TEST_DIR/podman/registries.conf"
    PODMAN_ARGS=(--root "$TEST_DIR/podman/root" --runroot "$TEST_DIR/podman/run"
        --storage-driver overlay --tmpdir "$TEST_DIR/podman/tmp")
}

pm() { podman "${PODMAN_ARGS[@]}" "$@"; }

# pm_run ARGS...: `podman run ARGS`, its stdout printed, its stderr passed on, its exit status
# returned. A run that exits 0 having printed nothing is run once more, and says so: podman 4.3
# can lose a short-lived container's output under load (seen once in a full suite run: an empty
# result, no error, and the same command printing its line right after).
pm_run() {
    local out rc=0
    out=$(pm run "$@" 2>"$TEST_DIR/pm_run.err") || rc=$?
    if ((rc == 0)) && [[ -z $out ]]; then
        echo "pm_run: podman run $* exited 0 and printed nothing; once more" >&2
        out=$(pm run "$@" 2>"$TEST_DIR/pm_run.err") || rc=$?
    fi
    cat "$TEST_DIR/pm_run.err" >&2
    printf '%s\n' "$out"
    return "$rc"
}

# ---- layers ---------------------------------------------------------------------------------

# tar_list FILE: one line per entry of a (gzip-, zstd- or un-compressed) tar:
#   TYPE MODE UID:GID SIZE MTIME NAME[ -> LINK]     TYPE: f d l(symlink) h(hardlink) c b p
# (directories' names end with /)
# plus " uname=X" / " gname=X" when the names are not empty, in archive order.
tar_list() {
    python3 - "$1" <<'PY'
import io, subprocess, sys, tarfile
path = sys.argv[1]
with open(path, "rb") as f:
    magic = f.read(4)
if magic[:2] == b"\x1f\x8b":
    tf = tarfile.open(path, "r:gz")
elif magic == b"\x28\xb5\x2f\xfd":
    data = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
else:
    tf = tarfile.open(path, "r:")
types = {tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l",
         tarfile.LNKTYPE: "h", tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}
out = sys.stdout.buffer
for m in tf:
    name = m.name + "/" if m.isdir() else m.name  # tarfile strips a directory's slash
    line = "%s %04o %d:%d %d %d %s" % (types.get(m.type, "?"), m.mode, m.uid, m.gid, m.size,
                                       m.mtime, name)
    if m.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        line += " -> " + m.linkname
    if m.uname:
        line += " uname=" + m.uname
    if m.gname:
        line += " gname=" + m.gname
    out.write(line.encode("utf-8", "surrogateescape") + b"\n")
PY
}

# tar_cat FILE MEMBER: a member's content.
tar_cat() {
    python3 - "$1" "$2" <<'PY'
import io, subprocess, sys, tarfile
path, member = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    magic = f.read(4)
if magic == b"\x28\xb5\x2f\xfd":
    data = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
else:
    tf = tarfile.open(path, "r:*")
sys.stdout.buffer.write(tf.extractfile(member).read())
PY
}

# image_layers DIR REF: the layer blob paths of REF in layout DIR, in order.
image_layers() {
    local digest d
    digest=$(layout_digest "$1" "$2")
    [[ -n $digest ]] || fail "no ref $2 in $1/index.json"
    for d in $(layer_digests "$1" "$digest"); do
        blob "$1" "$d"
    done
}

# image_config DIR REF: the config JSON of REF in layout DIR.
image_config() {
    local digest
    digest=$(layout_digest "$1" "$2")
    [[ -n $digest ]] || fail "no ref $2 in $1/index.json"
    cat "$(blob "$1" "$(config_digest "$1" "$digest")")"
}

# all_entries DIR REF: tar_list of every layer of REF, concatenated.
all_entries() {
    local l
    for l in $(image_layers "$1" "$2"); do
        tar_list "$l"
    done
}

# ---- a sample source tree -------------------------------------------------------------------

# make_tree DIR [reverse]: a context exercising what layers must get right: nested dirs, an
# empty dir, exec and non-exec files with odd modes, a symlink, a hardlink, a space, non-ASCII,
# a name longer than 100 bytes, a .factoryignore. "reverse" creates the entries in the
# opposite order (so readdir order differs on tmpfs) — the content is identical.
LONG_NAME=$(printf 'long-%.0s' {1..25})name.txt # 134 bytes
NON_ASCII='ünïcødé-日本語.txt'
make_tree() {
    local dir=$1 order=${2:-forward} i
    mkdir -p "$dir"
    local -a files=(a.txt "sub/b.txt" "sub/deeper/c.txt" "with space.txt" "$NON_ASCII"
        "sub/$LONG_NAME")
    if [[ $order == reverse ]]; then
        local -a rev=()
        for ((i = ${#files[@]} - 1; i >= 0; i--)); do rev+=("${files[i]}"); done
        files=("${rev[@]}")
    fi
    for f in "${files[@]}"; do
        mkdir -p "$dir/$(dirname "$f")"
        printf 'content of %s\n' "$f" >"$dir/$f"
    done
    printf '#!/bin/sh\necho tool\n' >"$dir/tool.sh"
    chmod 0700 "$dir/tool.sh"                # exec bit kept: 0755 in the image
    chmod 0600 "$dir/a.txt"                  # normalized to 0644
    chmod 0664 "$dir/sub/b.txt"              # normalized to 0644
    mkdir -p "$dir/empty"
    chmod 0700 "$dir/sub/deeper"             # directories: 0755
    ln -s a.txt "$dir/link-to-a"
    ln "$dir/sub/deeper/c.txt" "$dir/sub/hardlink-to-c"
    printf '*.log\ntmp/\n' >"$dir/.factoryignore"
}

# ---- helpers for peers ----------------------------------------------------------------------

# free_port: an unused TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_http_server DIR SECONDS: serves DIR (tests/data/http-server.py, smart-HTTP git under
# /git/ when DIR has git-repos/) on 127.0.0.1 for at most SECONDS; sets HTTP_PORT and HTTP_PID.
# Stopped by the test's exit.
start_http_server() {
    local dir=$1 seconds=$2 port_file
    port_file=$(mktemp "$TEST_DIR/http-port.XXXXXX")
    rm -f "$port_file"
    timeout "$seconds" python3 "$FACTORY_SOURCE_DIR/tests/data/http-server.py" "$dir" "$port_file" \
        "$((seconds - 10))" &
    HTTP_PID=$!
    _lib_on_exit "kill $HTTP_PID 2>/dev/null"
    for _ in $(seq 1 100); do [[ -s $port_file ]] && break; sleep 0.1; done
    [[ -s $port_file ]] || fail "the HTTP server on $dir did not start"
    HTTP_PORT=$(cat "$port_file")
}

# start_git_daemon DIR SECONDS [REPO]: `git daemon` exporting the repositories of DIR on
# 127.0.0.1 for at most SECONDS, ready once REPO (default app.git) answers; sets GIT_PORT and
# GIT_DAEMON_PID.
start_git_daemon() {
    local dir=$1 seconds=$2 repo=${3:-app.git}
    GIT_PORT=$(free_port)
    timeout "$seconds" git daemon --reuseaddr --listen=127.0.0.1 --port="$GIT_PORT" --export-all \
        --base-path="$dir" "$dir" &
    GIT_DAEMON_PID=$!
    _lib_on_exit "kill $GIT_DAEMON_PID 2>/dev/null"
    for _ in $(seq 1 100); do
        git ls-remote "git://127.0.0.1:$GIT_PORT/$repo" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "git daemon on $dir did not answer"
}

# start_registry: runs docker-registry on 127.0.0.1 (storage under $TEST_DIR), sets REGISTRY to
# host:port; stopped by the test's exit. Only loopback traffic.
start_registry() {
    need docker-registry curl
    local port
    port=$(free_port)
    mkdir -p "$TEST_DIR/registry/data"
    cat >"$TEST_DIR/registry/config.yml" <<EOC
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $TEST_DIR/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOC
    docker-registry serve "$TEST_DIR/registry/config.yml" >"$TEST_DIR/registry/log" 2>&1 &
    REGISTRY_PID=$!
    REGISTRY=127.0.0.1:$port
    _lib_on_exit "kill $REGISTRY_PID 2>/dev/null; wait $REGISTRY_PID 2>/dev/null"
    local i
    for i in $(seq 1 100); do
        curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && return 0
        kill -0 "$REGISTRY_PID" 2>/dev/null || fail "docker-registry died: $(tail -n 5 "$TEST_DIR/registry/log")"
        sleep 0.1
    done
    fail "docker-registry did not answer on $REGISTRY"
}
