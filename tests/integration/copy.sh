# Copy semantics, read back from the layer with Python's tarfile: directories copy their
# contents; globs and arrays; modes normalized to 0644/0755 unless `mode` is given; owner 0:0
# unless uid/gid; empty owner names; parents before children, sorted; symlinks and hardlinks
# kept; .factoryignore; long and non-ASCII names; named contexts.
source "$(dirname "$0")/../lib.sh"
need jq python3

make_tree ctx
echo junk >ctx/junk.log
mkdir -p ctx/tmp && echo x >ctx/tmp/scratch
mkdir -p other/conf && echo 'k=v' >other/conf/app.conf
write ctx/copy.toml <<EOF
[image]
name = "copy"

[contexts]
extra = "$TEST_DIR/other"

[[step]]
copy = [
  { src = ".", dest = "/tree/" },
  { src = "sub/*.txt", dest = "/globbed/" },
  { src = ["a.txt", "tool.sh"], dest = "/array/" },
  { src = "a.txt", dest = "/modes/a-0600", mode = "0600" },
  { src = "tool.sh", dest = "/modes/tool-0750", mode = "0750", uid = 1000, gid = 2000 },
  { src = "sub", dest = "/owned/", uid = 33, gid = 33 },
  { context = "extra", src = "conf/app.conf", dest = "/etc/app.conf" },
]
EOF
store=$TEST_DIR/store
d=$(build ctx/copy.toml)
entries=$(all_entries "$store" copy:latest)
printf '%s\n' "$entries" >entries
layer=$(image_layers "$store" copy:latest)

# has LINE-REGEX WHAT
has() { assert_match "(^|"$'\n'")$1(\$|"$'\n'")" "$entries" "$2"; }

step "directories copy their contents; modes normalized; owner 0:0"
has 'd 0755 0:0 0 0 tree/' "dest directory"
has 'f 0644 0:0 [0-9]+ 0 tree/a\.txt' "0600 file becomes 0644"
has 'f 0644 0:0 [0-9]+ 0 tree/sub/b\.txt' "0664 file becomes 0644"
has 'f 0755 0:0 [0-9]+ 0 tree/tool\.sh' "0700 exec file becomes 0755"
has 'd 0755 0:0 0 0 tree/sub/deeper/' "0700 directory becomes 0755"
has 'd 0755 0:0 0 0 tree/empty/' "empty directory kept"
has 'l 0777 0:0 0 0 tree/link-to-a -> a\.txt' "symlink kept"
has 'f 0644 0:0 [0-9]+ 0 tree/with space\.txt' "a name with a space"
has "f 0644 0:0 [0-9]+ 0 tree/$NON_ASCII" "a non-ASCII name"
has "f 0644 0:0 [0-9]+ 0 tree/sub/$LONG_NAME" "a name longer than 100 bytes"
assert_match '(^|'$'\n'')h 0644 0:0 0 0 tree/sub/(deeper/c\.txt -> tree/sub/hardlink-to-c|hardlink-to-c -> tree/sub/deeper/c\.txt)($|'$'\n'')' \
    "$entries" "hardlink kept as a hardlink"
assert_not_contains "$entries" "uname=" "empty owner names"
assert_not_contains "$entries" "gname=" "empty group names"
assert_eq "content of $NON_ASCII" "$(tar_cat "$layer" "tree/$NON_ASCII")" "non-ASCII file content"

step ".factoryignore"
assert_not_contains "$entries" "junk.log" "*.log ignored"
assert_not_contains "$entries" "tree/tmp" "tmp/ ignored"

step "globs, arrays, mode and owner overrides, named contexts"
has 'f 0644 0:0 [0-9]+ 0 globbed/b\.txt' "glob match"
assert_not_contains "$entries" "globbed/deeper" "* does not cross directories"
has 'f 0644 0:0 [0-9]+ 0 array/a\.txt' "array item 1"
has 'f 0755 0:0 [0-9]+ 0 array/tool\.sh' "array item 2"
has 'f 0600 0:0 [0-9]+ 0 modes/a-0600' "mode override"
has 'f 0750 1000:2000 [0-9]+ 0 modes/tool-0750' "mode and uid/gid override"
has 'f 0644 33:33 [0-9]+ 0 owned/b\.txt' "uid/gid override on a directory copy"
has 'd 0755 33:33 0 0 owned/deeper/' "uid/gid override applies to directories too"
has 'f 0644 0:0 4 0 etc/app\.conf' "file from a named context"
assert_eq "k=v" "$(tar_cat "$layer" etc/app.conf)" "named context content"

step "order: parents before children, sorted by path"
python3 - "$layer" <<'PY'
import sys, tarfile
names = [m.name.rstrip("/") for m in tarfile.open(sys.argv[1], "r:*")]
seen = set()
for n in names:
    parent = n.rsplit("/", 1)[0] if "/" in n else ""
    if parent and parent not in seen:
        sys.exit(f"FAIL: {n} comes before its parent {parent}")
    seen.add(n)
if names != sorted(names, key=lambda n: n.encode()):
    # sorted by path bytes; print the first out-of-order pair
    for a, b in zip(names, names[1:]):
        if a.encode() > b.encode():
            sys.exit(f"FAIL: entries not sorted: {a!r} before {b!r}")
if len(names) != len(set(names)):
    sys.exit("FAIL: duplicate entries")
PY

step "the layer is a PAX (or ustar) archive without atime/ctime"
python3 - "$layer" <<'PY'
import sys, tarfile
tf = tarfile.open(sys.argv[1], "r:*")
for m in tf:
    for key in ("atime", "ctime"):
        if key in m.pax_headers:
            sys.exit(f"FAIL: {m.name} has {key} in its PAX header")
if tf.format not in (tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT):
    sys.exit("FAIL: unknown tar format")
PY

step "a changed file changes the digest; a touched one doesn't"
touch -d '2020-01-01' ctx/a.txt
assert_eq "$d" "$(build ctx/copy.toml)" "touch"
chmod 0640 ctx/a.txt
assert_eq "$d" "$(build ctx/copy.toml)" "chmod without the exec bit"
echo changed >>ctx/a.txt
assert_ne "$d" "$(build ctx/copy.toml)" "changed content"
echo "PASS: $TEST_NAME"
