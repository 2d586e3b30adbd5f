# ext4:FILE (docs/cli.md "Destinations"): the flattened image as an ext4 file system with the
# image's owners and modes, byte-identical however and wherever it is exported, with FILE.json
# beside it; bad input fails with a clear error and leaves nothing behind.
source "$(dirname "$0")/../lib.sh"
need jq mke2fs debugfs e2fsck umoci sha256sum unshare
need_root
bb=$(busybox_context)

# The recipe: busybox, a file owned 1000:1000, a setuid binary, a symlink, a hard link, an
# empty directory, a name with a space and a quote, and a file removed again by a later layer.
recipe_in() {
    local dir=$1
    mkdir -p "$dir/ctx/home" "$dir/ctx/empty"
    printf 'note of user 1000\n' >"$dir/ctx/home/note.txt"
    printf 'gone\n' >"$dir/ctx/gone.txt"
    printf 'odd "name"\n' >"$dir/ctx/odd \"name\".txt"
    write "$dir/ctx/ext4.toml" <<EOF2
[image]
name = "ext4-test"
tags = ["1"]
epoch = 1700000000

[contexts]
busybox = "$bb"

[[step]]
copy = [
  { context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" },
  { context = "busybox", src = "busybox", dest = "/bin/sh", mode = "0755" },
]

[[step]]
copy = [
  { src = "home/note.txt", dest = "/home/user/note.txt", uid = 1000, gid = 1000 },
  { context = "busybox", src = "busybox", dest = "/usr/bin/su-tool", mode = "4755" },
  { src = "empty", dest = "/srv/empty/" },
  { src = "odd \"name\".txt", dest = "/srv/odd \"name\".txt" },
  { src = "gone.txt", dest = "/srv/gone.txt" },
]

[[step]]
run = "/bin/busybox ln -s /home/user/note.txt /srv/link && /bin/busybox ln /bin/busybox /bin/ls && /bin/busybox rm /srv/gone.txt"
EOF2
}

recipe_in "$TEST_DIR/a"
digest=$(build --cache "$TEST_DIR/store" "$TEST_DIR/a/ctx/ext4.toml")

step "export ext4 twice: the same bytes, and FILE.json describes them"
expect_ok export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/one.ext4"
assert_eq "ext4:$TEST_DIR/one.ext4 $digest" "$OUT" "export's stdout"
expect_ok export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/two.ext4"
cmp "$TEST_DIR/one.ext4" "$TEST_DIR/two.ext4" || fail "two exports of one image differ"
sum=$(sha256sum "$TEST_DIR/one.ext4" | cut -d' ' -f1)
json=$TEST_DIR/one.ext4.json
assert_eq "$digest" "$(jq -r .image "$json")" "json: image"
assert_eq ext4 "$(jq -r .format "$json")" "json: format"
assert_eq "$sum" "$(jq -r .sha256 "$json")" "json: sha256 of the output"
assert_eq "$(stat -c %s "$TEST_DIR/one.ext4")" "$(jq -r .size "$json")" "json: size"
assert_eq null "$(jq -r .packages "$json")" "json: no dpkg status, no package list"
uuid=$(jq -r .uuid "$json")
assert_match '^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "$uuid" "json: uuid"
assert_contains "$(dumpe2fs -h "$TEST_DIR/one.ext4" 2>/dev/null)" "$uuid" "the file system's UUID"
grep -q '^\.tmp-' <<<"$(ls -a "$TEST_DIR")" && fail "a temp directory was left: $(ls -a "$TEST_DIR")"

step "rootfs-tar exported twice: the same bytes too"
expect_ok export --cache "$TEST_DIR/store" "$digest" "rootfs-tar:$TEST_DIR/one.tar" "rootfs-tar:$TEST_DIR/two.tar"
cmp "$TEST_DIR/one.tar" "$TEST_DIR/two.tar" || fail "two rootfs-tar exports differ"

step "e2fsck -fn passes"
e2fsck -fn "$TEST_DIR/one.ext4" >"$TEST_DIR/fsck.out" 2>&1 ||
    fail "e2fsck -fn failed:"$'\n'"$(cat "$TEST_DIR/fsck.out")"

step "debugfs: the image's owners and modes, every time the epoch"
stat_of_in() { debugfs -R "stat \"$2\"" "$1" 2>/dev/null; }
stat_of() { stat_of_in "$TEST_DIR/one.ext4" "$1"; }
note=$(stat_of /home/user/note.txt)
assert_match 'User: +1000 +Group: +1000' "$note" "note.txt owned 1000:1000"
assert_match 'Mode: +0644' "$note" "note.txt mode"
su=$(stat_of /usr/bin/su-tool)
assert_match 'Mode: +04755' "$su" "su-tool keeps its setuid bit"
assert_match 'User: +0 +Group: +0' "$su" "su-tool owned by root"
for field in ctime atime crtime mtime; do
    assert_match "$field: 0x6553f100" "$note" "note.txt $field is the epoch 1700000000"
    # No layer records "/", and mke2fs makes lost+found: the writer's own, at the epoch too.
    assert_match "$field: 0x6553f100" "$(stat_of /)" "/ $field is the epoch"
    assert_match "$field: 0x6553f100" "$(stat_of /lost+found)" "lost+found $field is the epoch"
done
assert_match 'Links: 2' "$(stat_of /bin/ls)" "the hard link shares busybox's inode"
assert_contains "$(debugfs -R 'ls -l /srv' "$TEST_DIR/one.ext4" 2>/dev/null)" 'odd "name".txt' "a name with a quote"

assert_not_contains "$(debugfs -R 'ls -l /srv' "$TEST_DIR/one.ext4" 2>/dev/null)" 'gone.txt' "a removed file"

step "the rootfs inside equals umoci unpack of the same image, file for file"
expect_ok export --cache "$TEST_DIR/store" "$digest" "oci:$TEST_DIR/layout:t"
umoci unpack --image "$TEST_DIR/layout:t" "$TEST_DIR/bundle" >/dev/null 2>&1 ||
    fail "umoci unpack failed"
mkdir "$TEST_DIR/dump"
debugfs -R "rdump / $TEST_DIR/dump" "$TEST_DIR/one.ext4" >/dev/null 2>&1
rmdir "$TEST_DIR/dump/lost+found"
# Types, owners, sizes, link targets and content from the dump; modes from debugfs itself
# (rdump chowns after chmod, which clears a setuid bit).
listing() {
    (cd "$1" && find . -mindepth 1 -printf '%p %y %U:%G %s %l\n' | LC_ALL=C sort)
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
listing "$TEST_DIR/bundle/rootfs" >"$TEST_DIR/umoci.list"
listing "$TEST_DIR/dump" >"$TEST_DIR/ext4.list"
diff "$TEST_DIR/umoci.list" "$TEST_DIR/ext4.list" >"$TEST_DIR/tree.diff" ||
    fail "the ext4's tree differs from umoci's:"$'\n'"$(head -n 30 "$TEST_DIR/tree.diff")"
(cd "$TEST_DIR/bundle/rootfs" && find . -mindepth 1 | LC_ALL=C sort) >"$TEST_DIR/paths"
(cd "$TEST_DIR/bundle/rootfs" && find . -mindepth 1 -printf '%p %m\n' | LC_ALL=C sort |
    awk '{ print $NF }' | sed 's/^0*//') >"$TEST_DIR/umoci.modes"
sed 's|^\.||; s|"|""|g; s|.*|stat "&"|' "$TEST_DIR/paths" >"$TEST_DIR/stat.cmds"
debugfs -f "$TEST_DIR/stat.cmds" "$TEST_DIR/one.ext4" 2>/dev/null |
    sed -n 's/.*Mode: *0*\([0-7]*\).*/\1/p' >"$TEST_DIR/ext4.modes"
assert_eq "$(wc -l <"$TEST_DIR/paths")" "$(wc -l <"$TEST_DIR/ext4.modes")" "a mode for every path"
diff "$TEST_DIR/umoci.modes" "$TEST_DIR/ext4.modes" >"$TEST_DIR/modes.diff" ||
    fail "modes differ from umoci's:"$'\n'"$(head -n 30 "$TEST_DIR/modes.diff")"
assert_contains "$(paste -d' ' "$TEST_DIR/paths" "$TEST_DIR/ext4.modes")" "./usr/bin/su-tool 4755" "the setuid binary's mode"

step "another store, umask 077, TZ=Asia/Tokyo, another path: the same bytes"
(
    umask 077
    recipe_in "$TEST_DIR/b dir"
    cd "$TEST_DIR/b dir/ctx"
    TZ=Asia/Tokyo LC_ALL=C.UTF-8 "$FACTORY" build --cache "$TEST_DIR/store2" ext4.toml \
        -o "ext4:$TEST_DIR/b dir/other.ext4" >"$TEST_DIR/b.out" 2>"$TEST_DIR/b.err"
) || fail "build -o ext4 in the second store failed:"$'\n'"$(tail "$TEST_DIR/b.err")"
assert_eq "ext4-test:1 $digest" "$(tail -n 1 "$TEST_DIR/b.out")" "build -o ext4: keeps the stdout contract"
cmp "$TEST_DIR/one.ext4" "$TEST_DIR/b dir/other.ext4" ||
    fail "the ext4 of the second store differs"

step "exported by nobody (no chown, no mknod, no namespace): the same bytes"
need setpriv
if id nobody >/dev/null 2>&1; then
    mkdir -m 0777 "$TEST_DIR/nobody"
    cp -r "$TEST_DIR/store" "$TEST_DIR/nobody/store" && chmod -R a+rwX "$TEST_DIR/nobody/store"
    (cd "$TEST_DIR/nobody" && umask 027 &&
        setpriv --reuid nobody --regid nogroup --clear-groups env -u FACTORY_CACHE TZ=America/New_York \
        "$FACTORY" export --cache "$TEST_DIR/nobody/store" "$digest" "ext4:$TEST_DIR/nobody/n.ext4") \
        >"$TEST_DIR/n.out" 2>"$TEST_DIR/n.err" || fail "export as nobody failed:"$'\n'"$(cat "$TEST_DIR/n.err")"
    cmp "$TEST_DIR/one.ext4" "$TEST_DIR/nobody/n.ext4" || fail "nobody's ext4 differs from root's"
fi

step "device nodes and xattrs of a base layer: made by debugfs when the exporter can't"
# A base image whose layer has a character device, a fifo and an xattr (written with Python's
# tarfile: a RUN step's changes never carry device nodes).
python3 - "$TEST_DIR/devbase" <<'PY'
import hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(out + "/blobs/sha256")
def blob(data):
    h = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{h}", "wb").write(data)
    return "sha256:" + h
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    # "/" with a time of its own (2020-09-13), and a file whose parents no entry lists.
    i = tarfile.TarInfo("."); i.type = tarfile.DIRTYPE; i.mode = 0o755; i.mtime = 1600000000
    t.addfile(i)
    i = tarfile.TarInfo("opt/deep/f"); i.mtime = 1700000000
    t.addfile(i, io.BytesIO(b""))
    for name, kind in (("dev/", tarfile.DIRTYPE), ("dev/null", tarfile.CHRTYPE),
                       ("dev/sda", tarfile.BLKTYPE), ("dev/pipe", tarfile.FIFOTYPE)):
        i = tarfile.TarInfo(name.rstrip("/")); i.type = kind; i.mtime = 1700000000
        i.mode = 0o755 if kind == tarfile.DIRTYPE else 0o660
        i.devmajor, i.devminor = (1, 3) if name == "dev/null" else (8, 0)
        t.addfile(i)
    data = b"capable\n"
    i = tarfile.TarInfo("cap-file"); i.size = len(data); i.mode = 0o755; i.mtime = 1700000000
    i.uid = i.gid = 1000
    i.pax_headers = {"SCHILY.xattr.user.note": "hello"}
    t.addfile(i, io.BytesIO(data))
layer = buf.getvalue()
diff_id = blob(layer)
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": len(layer)}]}).encode()
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": blob(manifest), "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
json.dump(index, open(out + "/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(out + "/oci-layout", "w"))
PY
write "$TEST_DIR/devimg/dev.toml" <<EOF2
base = "oci:$TEST_DIR/devbase:1"

[image]
name = "ext4-dev"
epoch = 1700000000
EOF2
devdigest=$(build --cache "$TEST_DIR/store" "$TEST_DIR/devimg/dev.toml")
expect_ok export --cache "$TEST_DIR/store" "$devdigest" "ext4:$TEST_DIR/dev.ext4"
dev=$(stat_of_in "$TEST_DIR/dev.ext4" /dev/null)
assert_match 'Type: character special +Mode: +0660' "$dev" "a character device"
assert_match 'Device major/minor number: 01:03' "$dev" "its numbers"
assert_match 'Type: block special' "$(stat_of_in "$TEST_DIR/dev.ext4" /dev/sda)" "a block device"
assert_match 'Type: FIFO' "$(stat_of_in "$TEST_DIR/dev.ext4" /dev/pipe)" "a fifo"
assert_contains "$(debugfs -R 'ea_list /cap-file' "$TEST_DIR/dev.ext4" 2>/dev/null)" 'user.note (5) = "hello"' "the xattr"
assert_match 'mtime: 0x5f5e1000' "$(stat_of_in "$TEST_DIR/dev.ext4" /)" "/ has the mtime its layer gives it"
assert_match 'ctime: 0x6553f100' "$(stat_of_in "$TEST_DIR/dev.ext4" /)" "/ has the epoch's ctime"
assert_match 'mtime: 0x6553f100' "$(stat_of_in "$TEST_DIR/dev.ext4" /opt/deep)" "a parent no entry lists: the epoch"
e2fsck -fn "$TEST_DIR/dev.ext4" >/dev/null 2>&1 || fail "e2fsck of the device image"
if id nobody >/dev/null 2>&1; then
    rm -rf "$TEST_DIR/nobody/store" && cp -r "$TEST_DIR/store" "$TEST_DIR/nobody/store" &&
        chmod -R a+rwX "$TEST_DIR/nobody/store"
    (cd "$TEST_DIR/nobody" && setpriv --reuid nobody --regid nogroup --clear-groups \
        "$FACTORY" export --cache "$TEST_DIR/nobody/store" "$devdigest" "ext4:$TEST_DIR/nobody/dev.ext4") \
        >"$TEST_DIR/n.out" 2>"$TEST_DIR/n.err" || fail "export as nobody failed:"$'\n'"$(cat "$TEST_DIR/n.err")"
    cmp "$TEST_DIR/dev.ext4" "$TEST_DIR/nobody/dev.ext4" ||
        fail "nobody's ext4 (devices by debugfs) differs from root's (devices by mknod)"
fi

step "--size and --label"
expect_ok export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/sized.ext4" --size 200M --label bake-root
assert_eq $((200 << 20)) "$(stat -c %s "$TEST_DIR/sized.ext4")" "--size 200M"
assert_contains "$(dumpe2fs -h "$TEST_DIR/sized.ext4" 2>/dev/null)" "bake-root" "--label"
e2fsck -fn "$TEST_DIR/sized.ext4" >/dev/null 2>&1 || fail "e2fsck of the sized export"

step "bad input: clear errors, nothing left behind"
expect_exit 2 export --cache "$TEST_DIR/store" "$digest" "ext5:$TEST_DIR/x.img"
assert_contains "$(error_line)" 'unknown transport "ext5"' "unknown kind"
assert_contains "$(error_line)" "ext4:FILE, raw:FILE or docker://HOST/REPO[:TAG]" "the error lists the kinds"
expect_exit 1 export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/no/such/dir/x.ext4"
assert_contains "$(error_line)" "cannot export to ext4:$TEST_DIR/no/such/dir/x.ext4" "unwritable path"
expect_exit 1 export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/small.ext4" --size 1M
assert_contains "$(error_line)" "more than --size 1 MiB" "too small"
expect_exit 1 export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/small.ext4" --size 1K
assert_match "^factory: error: .*the image's files need at least [1-9][0-9]* MiB, more than --size 1 KiB$" "$(error_line)" \
    "a --size below a MiB is shown in KiB, not as 0 MiB"
assert_missing "$TEST_DIR/small.ext4"
assert_missing "$TEST_DIR/small.ext4.json"
# A disk output of build that fails moves no ref (docs/cli.md "Refs move last"): a fresh store
# gets none, and the image's ref in the old one stays where it was.
recipe_in "$TEST_DIR/c"
printf 'changed\n' >"$TEST_DIR/c/ctx/home/note.txt"
expect_exit 1 build --cache "$TEST_DIR/fresh" "$TEST_DIR/c/ctx/ext4.toml" -o "ext4:$TEST_DIR/c.ext4" --size 1M
assert_contains "$(error_line)" "more than --size 1 MiB" "build -o ext4: too small"
assert_eq "" "$("$FACTORY" images --cache "$TEST_DIR/fresh" | grep ext4-test || true)" "no ref in a fresh store"
expect_exit 1 build --cache "$TEST_DIR/store" "$TEST_DIR/c/ctx/ext4.toml" -o "ext4:$TEST_DIR/c.ext4" --size 1M
assert_contains "$("$FACTORY" inspect --cache "$TEST_DIR/store" ext4-test:1)" "$digest" "the ref stays at the old digest"
assert_missing "$TEST_DIR/c.ext4"
expect_exit 2 export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/x.ext4" --size 12Q
assert_contains "$(error_line)" 'invalid size "12Q"' "bad --size"
expect_exit 2 export --cache "$TEST_DIR/store" "$digest" "ext4:$TEST_DIR/x.ext4" --label 12345678901234567
assert_contains "$(error_line)" "longer than 16 bytes" "long --label"
# No mke2fs: /usr/sbin/mke2fs (and /sbin, a link to it) hidden under /dev/null.
RC=0
unshare -m --propagation private sh -c '
    for p in /usr/sbin/mke2fs /sbin/mke2fs; do [ -f "$p" ] && mount --bind /dev/null "$p"; done
    exec "$0" "$@"' "$FACTORY" export --cache "$TEST_DIR/store" "$digest" \
    "ext4:$TEST_DIR/nomk.ext4" >"$TEST_DIR/last.stdout" 2>"$TEST_DIR/last.stderr" || RC=$?
assert_eq 1 "$RC" "exit code without mke2fs"
assert_contains "$(error_line)" "mke2fs not found" "missing mke2fs"
assert_missing "$TEST_DIR/nomk.ext4"
grep -q '^\.tmp-' <<<"$(ls -a "$TEST_DIR")" && fail "a temp directory was left: $(ls -a "$TEST_DIR")"
true
