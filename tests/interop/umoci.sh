# umoci unpacks factory's images (as root), and the unpacked rootfs matches the sources:
# contents, modes (normalized or overridden), owners (0:0 or overridden), symlinks, hardlinks,
# empty dirs, long (>100 byte) and non-ASCII names, ignored files absent. umoci 0.4.7 can't read
# zstd layers (MACHINE-NOTES), so only gzip here; interop/podman.sh covers zstd.
source "$(dirname "$0")/../lib.sh"
need umoci jq
need_root

bb=$(busybox_context)
make_tree ctx
echo junk >ctx/junk.log
mkdir -p ctx/tmp && echo x >ctx/tmp/scratch
write ctx/tree.toml <<EOF
[image]
name = "tree"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]

[[step]]
copy = [
  { src = ".", dest = "/srv/tree/" },
  { src = "tool.sh", dest = "/usr/local/bin/tool", uid = 1000, gid = 1001 },
  { src = "sub", dest = "/srv/private/", mode = "0640", uid = 33, gid = 33 },
  { src = "a.txt", dest = "/etc/setuid-free", mode = "4755" },
]
EOF
store=$TEST_DIR/store

step "build and unpack with umoci"
digest=$(build -o "oci:$TEST_DIR/layout:t" ctx/tree.toml)
umoci unpack --image "$TEST_DIR/layout:t" "$TEST_DIR/bundle" >/dev/null ||
    fail "umoci unpack of the oci: output failed"
root=$TEST_DIR/bundle/rootfs
# The store itself is a layout umoci reads too (ref name:tag).
umoci unpack --image "$store:tree:latest" "$TEST_DIR/bundle-store" >/dev/null ||
    fail "umoci unpack of the store failed"
diff -r --no-dereference "$root" "$TEST_DIR/bundle-store/rootfs" ||
    fail "the store and the oci: output unpack differently"

# stat_of PATH: "TYPE MODE UID:GID" with TYPE as find -printf %y.
stat_of() { find "$1" -maxdepth 0 -printf '%y %m %U:%G\n'; }

step "contents equal the sources (ignored files excepted)"
diff -r --no-dereference --exclude=junk.log --exclude=tmp ctx "$root/srv/tree" ||
    fail "unpacked /srv/tree differs from the sources"
assert_missing "$root/srv/tree/junk.log"
assert_missing "$root/srv/tree/tmp"
cmp /usr/bin/busybox "$root/bin/busybox" || fail "busybox differs"
cmp ctx/tool.sh "$root/usr/local/bin/tool" || fail "tool differs"
diff -r --no-dereference ctx/sub "$root/srv/private" || fail "/srv/private differs"

step "modes and owners"
assert_eq "f 644 0:0" "$(stat_of "$root/srv/tree/a.txt")" "0600 file → 0644"
assert_eq "f 644 0:0" "$(stat_of "$root/srv/tree/sub/b.txt")" "0664 file → 0644"
assert_eq "f 755 0:0" "$(stat_of "$root/srv/tree/tool.sh")" "0700 exec → 0755"
assert_eq "d 755 0:0" "$(stat_of "$root/srv/tree/sub/deeper")" "0700 dir → 0755"
assert_eq "d 755 0:0" "$(stat_of "$root/srv/tree")" "dest dir"
assert_eq "f 755 0:0" "$(stat_of "$root/bin/busybox")" "busybox"
assert_eq "f 755 1000:1001" "$(stat_of "$root/usr/local/bin/tool")" "uid/gid override"
assert_eq "f 640 33:33" "$(stat_of "$root/srv/private/b.txt")" "mode + owner override (file)"
assert_eq "f 640 33:33" "$(stat_of "$root/srv/private/deeper/c.txt")" "mode + owner override (nested)"
assert_eq 33:33 "$(stat -c %u:%g "$root/srv/private/deeper")" "owner override (directory)"
assert_eq "f 4755 0:0" "$(stat_of "$root/etc/setuid-free")" "an explicit mode keeps the setuid bit"

step "symlinks, hardlinks, empty dirs, names"
assert_eq a.txt "$(readlink "$root/srv/tree/link-to-a")" "symlink target"
[[ -L $root/srv/tree/link-to-a ]] || fail "link-to-a is not a symlink"
assert_eq "$(stat -c %i "$root/srv/tree/sub/deeper/c.txt")" "$(stat -c %i "$root/srv/tree/sub/hardlink-to-c")" \
    "hardlinked files share an inode"
assert_eq 2 "$(stat -c %h "$root/srv/tree/sub/deeper/c.txt")" "link count 2"
[[ -d $root/srv/tree/empty ]] || fail "empty directory missing"
assert_eq "" "$(ls -A "$root/srv/tree/empty")" "empty directory is empty"
assert_exists "$root/srv/tree/sub/$LONG_NAME"
assert_eq "content of sub/$LONG_NAME" "$(cat "$root/srv/tree/sub/$LONG_NAME")" "long name content"
assert_exists "$root/srv/tree/$NON_ASCII"
assert_exists "$root/srv/tree/with space.txt"

step "mtimes are the epoch"
bad=$(find "$root/srv" "$root/bin" "$root/usr" -newermt '@1' -printf '%p\n' | sed -n 1,3p)
assert_eq "" "$bad" "no file newer than the epoch (0)"

step "hello unpacks with /bin/sh -> busybox, and runs under the unpacked rootfs"
build "$FACTORY_SOURCE_DIR/recipes/hello.toml" >/dev/null
umoci unpack --image "$store:hello:latest" "$TEST_DIR/hello-bundle" >/dev/null
hroot=$TEST_DIR/hello-bundle/rootfs
assert_eq busybox "$(readlink "$hroot/bin/sh")" "/bin/sh symlink"
assert_eq "Hello from factory" "$(chroot "$hroot" /bin/hello)" "chroot run of /bin/hello"
assert_eq '["/bin/hello"]' "$(jq -c '.process.args' "$TEST_DIR/hello-bundle/config.json")" \
    "umoci's runtime config takes Cmd"
: "$digest"
echo "PASS: $TEST_NAME"
