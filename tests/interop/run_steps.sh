# RUN steps against real peers: whiteouts (a deleted file, a deleted directory, a directory
# replaced by a file) unpack the same in umoci, podman and factory's own applier; a failing
# command stops the build with its exit code and output; network = false has only loopback;
# cache mounts persist between builds and never enter a layer; a secret never reaches the store.
source "$(dirname "$0")/../lib.sh"
need umoci jq python3 crun runc
need_root

bb=$(busybox_context)
write ctx/files/etc/a.txt <<<"a"
write ctx/files/etc/dir/b.txt <<<"b"
write ctx/files/data/dir2/x <<<"x"
write ctx/files/data/keep <<<"keep"
write ctx/recipe.toml <<TOML
[image]
name = "runs"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]

[[step]]
run = ["/bin/busybox", "--install", "-s", "/bin"]

[[step]]
copy = [{ src = "files", dest = "/" }]

[[step]]
run = "rm /etc/a.txt && rm -rf /etc/dir && rm -rf /data/dir2 && echo file > /data/dir2 && echo new > /etc/new.txt"

[config]
env = { PATH = "/bin" }
TOML

step "build; the last layer holds whiteouts for what the step removed"
digest=$(build --progress plain -o "oci:$TEST_DIR/layout:runs" ctx/recipe.toml)
last_layer=$(jq -r '.layers[-1].digest' "$(blob "$FACTORY_CACHE" "$digest")")
listing=$(tar_list "$(blob "$FACTORY_CACHE" "$last_layer")")
assert_contains "$listing" " etc/.wh.a.txt" "whiteout of a file"
assert_contains "$listing" " etc/.wh.dir" "whiteout of a directory"
assert_contains "$listing" "f 0644 0:0 5 0 data/dir2" "the directory replaced by a file"
assert_not_contains "$listing" ".wh..wh..opq" "no opaque marker is needed"

step "umoci, factory's applier and podman see the same tree"
umoci unpack --image "$TEST_DIR/layout:runs" "$TEST_DIR/bundle" >/dev/null
expect_ok export runs "rootfs:$TEST_DIR/flat"
tree_of() {
    (cd "$1" && find . -mindepth 1 \( -type f -printf '%p f %m %U:%G %s\n' \) -o \
        \( -type d -printf '%p d %m %U:%G\n' \) -o \( -type l -printf '%p l %l\n' \) | LC_ALL=C sort)
}
assert_eq "$(tree_of "$TEST_DIR/bundle/rootfs")" "$(tree_of "$TEST_DIR/flat")" \
    "umoci unpack vs factory export rootfs:"
assert_missing "$TEST_DIR/flat/etc/a.txt"
assert_missing "$TEST_DIR/flat/etc/dir"
assert_eq "file" "$(cat "$TEST_DIR/flat/data/dir2")" "dir2 is a file now"
assert_eq "keep" "$(cat "$TEST_DIR/flat/data/keep")" "the rest of /data stays"
podman_setup
expect_ok export runs "docker-archive:$TEST_DIR/runs.tar"
pm load -q -i "$TEST_DIR/runs.tar" >/dev/null
probe='echo "$(cat /data/dir2)|$(cat /etc/new.txt)|$(test -e /etc/a.txt && echo there || echo missing)|$(test -e /etc/dir && echo there || echo missing)"'
assert_eq "file|new|missing|missing" \
    "$(pm run --rm --network none docker.io/library/runs:latest sh -c "$probe")" \
    "podman run sees the same tree"

step "a failing command: exit 1, its exit code, the command and its last output lines"
write ctx/fail.toml <<TOML
[image]
name = "fails"
[contexts]
busybox = "$bb"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/sh" }]
[[step]]
run = "echo first line; echo boom >&2; exit 3"
TOML
expect_exit 1 build ctx/fail.toml
# The output's tail first, the one-line error last (docs/cli.md "Errors").
assert_eq "factory: error: main 2/2: the command exited with 3: /bin/sh -c echo first line; echo boom >&2; exit 3" \
    "$(tail -n 1 "$TEST_DIR/last.stderr")" "the last line: the error, naming the step, the code and the command"
assert_eq 1 "$(grep -c '^factory: error: ' "$TEST_DIR/last.stderr")" "one error line"
assert_contains "$(grep -A3 'main 2/2: last lines of its output:' "$TEST_DIR/last.stderr" | tail -n +2)" \
    "  boom" "the last output lines are shown, before the error"

step "a missing workdir is created owned by the step's user (as Docker's WORKDIR)"
write ctx/workdir.toml <<TOML
[image]
name = "workdir"
[contexts]
busybox = "$bb"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
run = ["/bin/busybox", "touch", "made-here"]
user = "1000:1000"
workdir = "/home/dev/work"
TOML
umask 077 # the layer must not depend on it
expect_ok build ctx/workdir.toml
umask 022
digest=$(last_line)
digest=${digest##* }
listing=$(tar_list "$(blob "$FACTORY_CACHE" "$(jq -r '.layers[-1].digest' "$(blob "$FACTORY_CACHE" "$digest")")")")
assert_contains "$listing" "d 0755 1000:1000 0 0 home/" "a missing parent: the step's user"
assert_contains "$listing" "d 0755 1000:1000 0 0 home/dev/work/" "the workdir: the step's user"
assert_contains "$listing" "f 0644 1000:1000 0 0 home/dev/work/made-here" "the step wrote there"

step "network = false: only loopback; the default host network has more"
write ctx/net.toml <<TOML
[image]
name = "net"
[contexts]
busybox = "$bb"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox ls /sys/class/net > /hermetic"]
network = false
[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox ls /sys/class/net > /host"]
TOML
expect_ok build ctx/net.toml
expect_ok export net "rootfs:$TEST_DIR/net"
assert_eq "lo" "$(cat "$TEST_DIR/net/hermetic")" "network = false"
assert_ne "lo" "$(cat "$TEST_DIR/net/host")" "host network"

step "cache mounts persist between builds and never enter a layer"
write ctx/cache.toml <<'TOML'
[image]
name = "cachemount"
[args]
ROUND = "1"
[contexts]
busybox = "/usr/bin"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
run = ["/bin/busybox", "sh", "-c", "echo ${ROUND} >> /var/cache/thing/log; /bin/busybox cat /var/cache/thing/log | /bin/busybox wc -l > /count"]
cache = ["/var/cache/thing"]
TOML
expect_ok build --arg ROUND=1 ctx/cache.toml
expect_ok build --arg ROUND=2 ctx/cache.toml
expect_ok export cachemount "rootfs:$TEST_DIR/cm"
assert_eq "2" "$(tr -d ' ' <"$TEST_DIR/cm/count")" "the second run saw the first run's file"
assert_missing "$TEST_DIR/cm/var/cache/thing/log"

step "a secret is seen by the step and reaches no blob, record or log"
write ctx/secret.toml <<'TOML'
[image]
name = "secret"
[contexts]
busybox = "/usr/bin"
[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
run = ["/bin/busybox", "sh", "-c", "test -n \"$TOKEN\" && test \"$(/bin/busybox cat /run/secrets/token)\" = \"$TOKEN\" && echo ok > /checked"]
secret = [{ id = "file", target = "/run/secrets/token" }, { id = "env", env = "TOKEN" }]
TOML
# The same value through a file and through a variable: the step compares them, so the value
# itself is nowhere in the recipe.
printf 's3cr3t-value' >"$TEST_DIR/token"
export TOKEN_FOR_TEST=s3cr3t-value
expect_exit 2 build ctx/secret.toml
assert_contains "$(error_line)" "the step uses secret 'file', but no --secret id=file,src=FILE (or env=VAR) was given" \
    "a missing secret is a usage error"
expect_ok build --progress plain --secret "id=file,src=$TEST_DIR/token" \
    --secret id=env,env=TOKEN_FOR_TEST ctx/secret.toml
assert_not_contains "$ERR" "s3cr3t" "the log"
expect_ok export secret "rootfs:$TEST_DIR/sec"
assert_eq "ok" "$(cat "$TEST_DIR/sec/checked")" "the step saw both secrets"
assert_missing "$TEST_DIR/sec/run/secrets/token"
found=$(python3 - "$FACTORY_CACHE" <<'PY'
import gzip, os, sys
hits = []
for dirpath, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(dirpath, f)
        if os.path.islink(p):
            continue
        try:
            data = open(p, "rb").read()
        except OSError:
            continue
        if data[:2] == b"\x1f\x8b":
            try:
                data += gzip.decompress(data)
            except Exception:
                pass
        if b"s3cr3t" in data:
            hits.append(p)
print("\n".join(hits))
PY
)
assert_eq "" "$found" "files of the store holding the secret (blobs decompressed)"
