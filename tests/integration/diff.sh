# `factory diff A B` and `factory inspect REF --files` (docs/cli.md): two builds of one recipe
# whose context changed one file, lost one and had one chmodded list exactly those three, each
# with the layer of B that brought it; the same through store refs, recipes and oci: layouts.
source "$(dirname "$0")/../lib.sh"
need jq
bb=$(busybox_context)

mkdir -p ctx/app
write ctx/app.toml <<EOF
[image]
name = "diff-test"
tags = ["1"]
epoch = 1700000000

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
copy = [{ src = "app", dest = "/app/" }]
EOF
printf 'same\n' >ctx/app/same.txt
printf 'old\n' >ctx/app/change.txt
printf 'gone\n' >ctx/app/remove.txt
printf '#!/bin/sh\n' >ctx/app/tool.sh
chmod 0644 ctx/app/tool.sh
a=$(build ctx/app.toml)
expect_ok export "$a" "oci:$TEST_DIR/layout-a:v1" "docker-archive:$TEST_DIR/a-docker.tar:diff-test:1"

step "inspect --files lists the tree with each entry's layer"
expect_ok inspect "$a" --files
assert_match 'file 0644 0:0 4 /app/change.txt +\[layer 1 sha256:' "$OUT" "change.txt in layer 1"
assert_match 'file 0755 0:0 [0-9]+ /bin/busybox +\[layer 0 ' "$OUT" "busybox in layer 0"
assert_match 'dir 0755 0:0 0 /app ' "$OUT" "the directory"
expect_ok inspect "$a" --files --json
assert_eq 1 "$(jq '[.files[] | select(.path == "/app/remove.txt")][0].layer' <<<"$OUT")" "json layer"
assert_eq "$(printf 'gone\n' | sha256sum | cut -d' ' -f1)" \
    "$(jq -r '.files[] | select(.path == "/app/remove.txt").sha256' <<<"$OUT")" "json sha256"

step "change one file, remove one, chmod one; build again"
printf 'new content\n' >ctx/app/change.txt
rm ctx/app/remove.txt
chmod 0755 ctx/app/tool.sh
b=$(build ctx/app.toml)
assert_ne "$a" "$b" "the second build is another image"

step "diff lists exactly the three changes, each with its layer"
expect_ok diff "$a" "$b" --json
assert_eq 3 "$(jq '.changes | length' <<<"$OUT")" "three changes:"$'\n'"$OUT"
assert_eq '["content"] 1' "$(jq -c '.changes[] | select(.path == "/app/change.txt") | .what, .layer' <<<"$OUT" | tr '\n' ' ' | sed 's/ $//')" "change.txt"
assert_eq 'removed 1' "$(jq -r '.changes[] | select(.path == "/app/remove.txt") | "\(.change) \(.layer)"' <<<"$OUT")" "remove.txt"
assert_eq '["mode"] 1' "$(jq -c '.changes[] | select(.path == "/app/tool.sh") | .what, .layer' <<<"$OUT" | tr '\n' ' ' | sed 's/ $//')" "tool.sh"
assert_eq '0644 0755' "$(jq -r '.changes[] | select(.path == "/app/tool.sh") | "\(.a.mode) \(.b.mode)"' <<<"$OUT")" "the modes"
assert_eq 'true false' "$(jq -r '[.layers[].shared | tostring] | join(" ")' <<<"$OUT")" "layer 0 shared, layer 1 new"
assert_eq '0 2 1' "$(jq -r '.layers[1] | "\(.added) \(.changed) \(.removed)"' <<<"$OUT")" "layer 1 summary (chmod and content count as changed)"

expect_ok diff "$a" "$b"
assert_contains "$OUT" "~ /app/change.txt  [layer 1]  content (4→12 bytes)" "human: content"
assert_contains "$OUT" "- /app/remove.txt  [layer 1]" "human: removed"
assert_contains "$OUT" "~ /app/tool.sh  [layer 1]  mode 0644→0755" "human: chmod"
assert_eq 3 "$(grep -c '^[-+~] ' <<<"$OUT")" "three lines of changes"

step "the same images as a recipe and an oci: layout; an image with itself"
expect_ok diff "oci:$TEST_DIR/layout-a:v1" ctx/app.toml --json
assert_eq 3 "$(jq '.changes | length' <<<"$OUT")" "oci: layout against the recipe"
assert_eq "$b" "$(jq -r .b <<<"$OUT")" "the recipe's image is B"
expect_ok diff "$b" "$b"
assert_contains "$OUT" "no file differs" "an image against itself"

step "docker-archive: factory's own (an OCI layout inside) and skopeo's legacy one"
need skopeo
expect_ok diff "docker-archive:$TEST_DIR/a-docker.tar" "$b" --json
assert_eq "$a" "$(jq -r .a <<<"$OUT")" "the archive keeps A's manifest digest"
assert_eq 3 "$(jq '.changes | length' <<<"$OUT")" "three changes from the docker-archive"
skopeo copy -q "oci:$TEST_DIR/layout-a:v1" "docker-archive:$TEST_DIR/a-legacy.tar:ns/legacy:1" >/dev/null
grep -qx 'manifest.json' <<<"$(tar -tf a-legacy.tar)" || fail "skopeo wrote no manifest.json"
grep -qx 'index.json' <<<"$(tar -tf a-legacy.tar)" && fail "skopeo's docker-archive has an index.json: not the legacy form"
expect_ok diff "docker-archive:$TEST_DIR/a-legacy.tar:ns/legacy:1" "$b" --json
assert_eq 3 "$(jq '.changes | length' <<<"$OUT")" "three changes from the legacy archive:"$'\n'"$OUT"
assert_eq '["mode"]' "$(jq -c '.changes[] | select(.path == "/app/tool.sh") | .what' <<<"$OUT")" "the legacy archive's modes"
expect_ok diff "docker-archive:$TEST_DIR/a-legacy.tar" "$a"
assert_contains "$OUT" "no file differs" "the legacy archive holds A's files"
expect_exit 1 diff "docker-archive:$TEST_DIR/a-legacy.tar:other:1" "$a"
assert_contains "$(error_line)" 'a-legacy.tar: no image named "other:1"' "a name the archive lacks"
printf 'not a tar' >junk.tar
expect_exit 1 diff docker-archive:junk.tar "$a"
assert_contains "$(error_line)" "docker-archive:junk.tar: not a readable tar archive" "junk"

step "docker://: pulled from a registry"
start_registry
skopeo copy -q --dest-tls-verify=false "oci:$TEST_DIR/layout-a:v1" "docker://$REGISTRY/diff/app:a" >/dev/null
expect_ok diff --tls-verify=false "docker://$REGISTRY/diff/app:a" "$b" --json
assert_eq "$a" "$(jq -r .a <<<"$OUT")" "the registry's image is A"
assert_eq 3 "$(jq '.changes | length' <<<"$OUT")" "three changes from the registry image"
expect_exit 1 diff --tls-verify=false "docker://$REGISTRY/diff/app:missing" "$b"
assert_contains "$(error_line)" "diff/app" "a missing tag names the repository"

step "bad input"
python3 - <<'PY'
import io, tarfile
with tarfile.open("evil.tar", "w") as t:
    i = tarfile.TarInfo("manifest.json"); data = b'[{"Config":"c.json","Layers":["x/layer.tar"]}]'
    i.size = len(data); t.addfile(i, io.BytesIO(data))
    i = tarfile.TarInfo("x/layer.tar"); i.type = tarfile.SYMTYPE; i.linkname = "../../etc/passwd"
    t.addfile(i)
PY
expect_exit 1 diff docker-archive:evil.tar "$a"
assert_contains "$(error_line)" 'entry "x/layer.tar": a symlink other than <id>/FILE -> ../FILE' "a link out of the archive"
expect_exit 2 diff "$a" no-such:image
assert_contains "$(error_line)" "no image 'no-such:image'" "unknown ref"
true
