# Rootless factory (docs/runtime.md "Rootless"): an unprivileged user with subordinate ids
# builds an image with a RUN step into its own store, enters it with `factory shell` and
# `factory run`, and a file it creates in the project is its own on the host — as it is for
# root's shell with SUDO_UID/SUDO_GID. A user without subordinate ids gets a clear error.
# Runs as root: it creates the users (and removes them, their ranges and homes on every exit).
source "$(dirname "$0")/../lib.sh"
need_root
need useradd usermod userdel runuser newuidmap newgidmap runc jq

bb=$(busybox_context)

# The worktree may not be reachable by another user: the binary under test is copied.
mkdir -p "$TEST_DIR/bin"
cp "$FACTORY" "$TEST_DIR/bin/factory"
cp "$(dirname "$FACTORY")/factory-init" "$TEST_DIR/bin/factory-init" # process 1 of shells
chmod 0755 "$TEST_DIR/bin" "$TEST_DIR/bin/factory" "$TEST_DIR/bin/factory-init"
UFACTORY=$TEST_DIR/bin/factory

# Two users: one with 65536 subordinate uids and gids, one without any. useradd would allocate
# ranges by itself (SUB_UID_COUNT in login.defs): told not to, so the ranges are the test's.
user=fxrl$$
nosub=fxrn$$
uhome=$TEST_DIR/u-home
remove_users() {
    local u
    for u in "$user" "$nosub"; do
        id "$u" >/dev/null 2>&1 || continue
        usermod --del-subuids 200000-265535 --del-subgids 200000-265535 "$u" 2>/dev/null
        # A failed step's leftovers, and the store's namespace holder still on its way out
        # (userdel refuses a user who has a process): killed, and userdel tried again, 5 s at
        # most.
        for _ in $(seq 1 50); do
            pkill -KILL -u "$u" 2>/dev/null
            userdel "$u" 2>/dev/null && break
            sleep 0.1
        done
        id "$u" >/dev/null 2>&1 && echo "rootless.sh: could not remove user $u" >&2
    done
}
_lib_on_exit remove_users
useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -M -d "$uhome" -s /bin/sh "$user"
useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -M -d "$TEST_DIR/n-home" -s /bin/sh "$nosub"
usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$user"
uid=$(id -u "$user")
gid=$(id -g "$user")
mkdir -p "$uhome" "$TEST_DIR/n-home"
chown "$user:$gid" "$uhome"
chown "$nosub:" "$TEST_DIR/n-home"

# as USER HOME ARGS...: factory as USER (its own store, ~/.cache/factory); sets RC, OUT, ERR.
as() {
    local who=$1 home=$2
    shift 2
    RC=0
    runuser -u "$who" -- env -u FACTORY_CACHE -u XDG_RUNTIME_DIR -u SUDO_UID -u SUDO_GID \
        HOME="$home" "${EXTRA_ENV[@]}" "$UFACTORY" "$@" \
        >"$TEST_DIR/last.stdout" 2>"$TEST_DIR/last.stderr" || RC=$?
    OUT=$(cat "$TEST_DIR/last.stdout")
    ERR=$(cat "$TEST_DIR/last.stderr")
}
EXTRA_ENV=()
as_ok() {
    as "$user" "$uhome" "$@"
    [[ $RC -eq 0 ]] || fail "factory $* as $user exited $RC"$'\n'"$(_show_last "$@")"
}

# The project: the user's, with the recipe in it.
proj=$TEST_DIR/proj
mkdir -p "$proj"
write "$proj/bb.toml" <<'TOML'
[image]
name = "rootless-bb"

[contexts]
busybox = "@BB@"

[base]
image = "scratch"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && echo hi > /made-by-run"]

[config]
env = { PATH = "/bin" }
TOML
sed -i "s|@BB@|$bb|" "$proj/bb.toml"
chown -R "$user:$gid" "$proj"

step "build with a RUN step as $user (uid $uid), into ~/.cache/factory"
as_ok build --progress plain "$proj/bb.toml"
assert_match "^rootless-bb:latest $DIGEST_RE\$" "$(tail -n 1 "$TEST_DIR/last.stdout")" "build output"
user_digest=${OUT##* }
assert_contains "$ERR" "rootless: in a user namespace" "the runtime says it runs rootless"
store=$uhome/.cache/factory
assert_exists "$store/index.json"
assert_eq "$uid:$gid" "$(stat -c %u:%g "$store")" "the store's top directory is the user's"
# factory is root of the namespace: host uid 200000, the first subordinate id.
assert_eq "200000" "$(stat -c %u "$store/index.json")" "store files belong to the namespace's root"
assert_exists "$store/run/runc" # no XDG_RUNTIME_DIR: the runtime's state is in the store
step "outputs written for $user are its own: -o, --digest-file, export"
as_ok build -o "oci-archive:$proj/out.tar" --digest-file "$proj/digest" "$proj/bb.toml"
assert_eq "$user_digest" "$(cat "$proj/digest")" "--digest-file"
assert_eq "$uid:$gid" "$(stat -c %u:%g "$proj/out.tar")" "owner of the -o archive"
assert_eq "$uid:$gid" "$(stat -c %u:%g "$proj/digest")" "owner of the digest file"
as_ok export rootless-bb "oci:$proj/layout"
assert_eq "$uid:$gid" "$(find "$proj/layout" -printf '%U:%G\n' | sort -u)" "owner of every file of an exported layout"
step "the same recipe as root: the same digest"
expect_ok build "$proj/bb.toml"
assert_eq "$user_digest" "$(last_line | sed 's/.* //')" "rootless and root builds are identical"

step "shell as $user: its uid inside, a file it makes in the project is its own"
as_ok shell --project "$proj" rootless-bb -- sh -c "id -u; id -g; touch $proj/created"
assert_eq "$uid"$'\n'"$gid" "$OUT" "id inside the shell"
assert_eq "$uid:$gid" "$(stat -c %u:%g "$proj/created")" "owner of the file made in the shell"
as_ok shell --root --project "$proj" rootless-bb -- id -u
assert_eq 0 "$OUT" "--root is the namespace's root"

step "run as $user: the RUN step's file, exit codes, --network none, SIGTERM"
as_ok run rootless-bb -- cat /made-by-run
assert_eq "hi" "$OUT" "the RUN step's output is in the image"
as "$user" "$uhome" run rootless-bb -- sh -c 'echo out; echo err >&2; exit 5'
assert_eq 5 "$RC" "the command's exit code passes through the namespace"
assert_eq "out" "$OUT" "stdout"
assert_contains "$ERR" "err" "stderr"
as_ok run --network none rootless-bb -- ls /sys/class/net
assert_eq "lo" "$OUT" "a private network namespace has its own sysfs"
runuser -u "$user" -- env -u FACTORY_CACHE HOME="$uhome" "$UFACTORY" run rootless-bb -- \
    sh -c 'trap "exit 7" TERM; echo ready; sleep 30 & wait' >"$TEST_DIR/term.out" 2>&1 &
runner=$!
for _ in $(seq 1 100); do grep -q ready "$TEST_DIR/term.out" && break; sleep 0.1; done
# The factory outside the namespace: runuser's child.
outer=$(pgrep -P "$runner" | head -n 1)
[[ -n $outer ]] || fail "no factory process under runuser: $(cat "$TEST_DIR/term.out")"
kill -TERM "$outer"
rc=0
wait "$runner" || rc=$?
assert_eq 7 "$rc" "SIGTERM to the outer factory reaches the command"
# Ctrl-C: SIGINT to the whole process group; the outer factory waits for the command's answer.
setsid bash -c 'runuser -u "$1" -- env -u FACTORY_CACHE HOME="$2" "$3" run rootless-bb -- sh -c '"'"'trap "exit 9" INT; echo ready; sleep 30 & wait'"'"'; echo "rc=$?"' \
    _ "$user" "$uhome" "$UFACTORY" >"$TEST_DIR/int.out" 2>&1 &
for _ in $(seq 1 100); do grep -q ready "$TEST_DIR/int.out" 2>/dev/null && break; sleep 0.1; done
pgid=$(ps -o pgid= -p $! | tr -d ' ')
kill -INT -- "-$pgid"
wait $! || true
assert_contains "$(cat "$TEST_DIR/int.out")" "rc=9" "SIGINT reaches the command; its exit code is factory's"

step "layers a namespace can't hold: a device node is left out, an unmapped owner is refused"
# An OCI layout with one layer: busybox, plus EXTRA (a device node, or a file owned by uid 70000,
# beyond the 65536 ids the namespace maps). Its base recipe runs it.
make_layout() { # DIR EXTRA
    python3 - "$1" "$2" "$bb/busybox" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, extra, busybox = sys.argv[1:]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for name in ("bin", "dev", "home"):
        d = tarfile.TarInfo(name); d.type = tarfile.DIRTYPE; d.mode = 0o755; tf.addfile(d)
    data = open(busybox, "rb").read()
    f = tarfile.TarInfo("bin/busybox"); f.size = len(data); f.mode = 0o755
    tf.addfile(f, io.BytesIO(data))
    if extra == "device":
        c = tarfile.TarInfo("dev/null"); c.type = tarfile.CHRTYPE; c.devmajor, c.devminor = 1, 3
        c.mode = 0o666; tf.addfile(c)
    else:
        f = tarfile.TarInfo("home/far"); f.uid = f.gid = 70000; f.size = 0; tf.addfile(f)
layer = buf.getvalue()
def put(blob):
    h = hashlib.sha256(blob).hexdigest()
    os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
    open(f"{out}/blobs/sha256/{h}", "wb").write(blob)
    return {"digest": "sha256:" + h, "size": len(blob)}
lh = put(layer)
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                     "rootfs": {"type": "layers", "diff_ids": [lh["digest"]]}}).encode()
ch = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(ch, mediaType="application/vnd.oci.image.config.v1+json"),
    "layers": [dict(lh, mediaType="application/vnd.oci.image.layer.v1.tar")]}).encode()
mh = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [dict(mh, mediaType="application/vnd.oci.image.manifest.v1+json",
           annotations={"org.opencontainers.image.ref.name": "v1"})]}, open(f"{out}/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{out}/oci-layout", "w"))
PY
    chmod -R a+rX "$1"
}
for kind in device far; do
    make_layout "$TEST_DIR/layout-$kind" "$kind"
    write "$TEST_DIR/$kind.toml" <<TOML
[image]
name = "layer-$kind"

[base]
image = "oci:$TEST_DIR/layout-$kind:v1"
TOML
done
as "$user" "$uhome" run "$TEST_DIR/device.toml" -- /bin/busybox echo ran
assert_eq 0 "$RC" "an image with a device node runs rootless: $ERR"
assert_eq "ran" "$OUT"
assert_match "(^|"$'\n'")factory: warning: layer sha256:[0-9a-f]{64}: 1 device node\(s\) left out \(no mknod in a user namespace: rootless\)" \
    "$ERR" "one warning line for the layer"
as "$user" "$uhome" run "$TEST_DIR/far.toml" -- /bin/busybox true
assert_eq 1 "$RC" "a layer file owned by an unmapped id"
assert_contains "$ERR" 'entry "home/far": chown to 70000:70000: the id is not mapped in this user namespace' \
    "the error names the entry, the id and the reason"

step "XDG_RUNTIME_DIR owned by the user holds the runtime's state"
xdg=$TEST_DIR/xdg
mkdir -m 0700 "$xdg"
chown "$user:$gid" "$xdg"
EXTRA_ENV=(XDG_RUNTIME_DIR="$xdg")
as_ok run rootless-bb -- true
EXTRA_ENV=()
assert_exists "$xdg/factory/runc"

step "images and inspect read the store without entering the namespace"
as "$nosub" "$TEST_DIR/n-home" images --cache "$store"
assert_eq 0 "$RC" "images by a user without subordinate ids: $ERR"
assert_contains "$OUT" "rootless-bb:latest"
as "$nosub" "$TEST_DIR/n-home" inspect --cache "$store" rootless-bb
assert_eq 0 "$RC" "inspect by a user without subordinate ids: $ERR"

step "no subordinate ids: a clear error where root is needed, the old way where it is not"
nosub_error="factory: error: rootless: no subordinate uid range for $nosub in /etc/subuid (needs 65536; e.g. usermod --add-subuids 100000-165535 $nosub)"
as "$nosub" "$TEST_DIR/n-home" run rootless-bb -- true
assert_eq 1 "$RC" "exit code of run without subordinate ids"
assert_eq "$nosub_error" "$ERR" "the error names the user, the file and the fix"
as "$nosub" "$TEST_DIR/n-home" build "$proj/bb.toml"
assert_eq 1 "$RC" "exit code of a build with a RUN step without subordinate ids"
assert_eq "$nosub_error" "$ERR" "the same error for a build that needs root"
busybox_recipe copy-only >"$TEST_DIR/copy-only.toml"
as "$nosub" "$TEST_DIR/n-home" build "$TEST_DIR/copy-only.toml"
assert_eq 0 "$RC" "a copy-only build needs no namespace: $ERR"
assert_not_contains "$ERR" "rootless: " "no namespace for a copy-only build"

step "root's shell: SUDO_UID/SUDO_GID own what the shell makes"
SUDO_UID=$uid SUDO_GID=$gid expect_ok shell --project "$proj" rootless-bb -- \
    sh -c "id -u; touch $proj/created-by-root-shell"
assert_eq "$uid" "$OUT" "uid inside root's shell"
assert_eq "$uid:$gid" "$(stat -c %u:%g "$proj/created-by-root-shell")" "owner, root's shell"
expect_ok shell --root --project "$proj" rootless-bb -- id -u
assert_eq 0 "$OUT" "root's --root shell"

step "rootless environments: a second shell of $user joins the first; ps; the last one out ends it"
runuser -u "$user" -- env -u FACTORY_CACHE -u XDG_RUNTIME_DIR -u SUDO_UID -u SUDO_GID \
    HOME="$uhome" "$UFACTORY" shell --project "$proj" rootless-bb -- sh -c \
    "echo from-first > /dev/shm/first; touch $proj/ready; while [ ! -e $proj/go ]; do sleep 0.1; done" \
    >"$TEST_DIR/first.out" 2>&1 &
first=$!
_lib_on_exit "kill $first 2>/dev/null; touch $proj/go"
for _ in $(seq 1 150); do [[ -e $proj/ready ]] && break; sleep 0.1; done
assert_exists "$proj/ready"
as_ok shell --project "$proj" rootless-bb -- sh -c 'cat /dev/shm/first; id -u'
assert_eq "from-first"$'\n'"$uid" "$OUT" "the second shell is in the first one's container (its /dev/shm)"
assert_contains "$ERR" "factory: joined the environment" "it says so"
as_ok ps --json
assert_eq 1 "$(jq -r .shells <<<"$OUT")" "ps as $user: one shell left in it"
touch "$proj/go"
wait "$first"
for _ in $(seq 1 100); do # the last shell out ends it in the background
    as_ok ps
    [[ $(wc -l <<<"$OUT") == 1 ]] && break
    sleep 0.1
done
assert_eq 1 "$(wc -l <<<"$OUT")" "ps: header only once the last shell left"

step "nothing left: mounts, processes"
# The last shell of an environment ends it in the background: give that a moment.
for _ in $(seq 1 100); do
    [[ -z $(grep -F "$TEST_DIR" /proc/self/mountinfo) && -z $(pgrep -u "$uid") && -z $(pgrep -u 200000) ]] && break
    sleep 0.1
done
assert_eq "" "$(grep -F "$TEST_DIR" /proc/self/mountinfo || true)" "no mount on the host"
assert_eq "" "$(pgrep -u "$uid" || true)" "no process of $user left"
assert_eq "" "$(pgrep -u 200000 || true)" "no process of its namespace's root (containers, the holder) left"

step "the store goes: prune, then unshare rm"
as_ok cache prune
as_ok unshare -- rm -rf "$store"
assert_missing "$store"
