# Listings (docs/cache.md "Listings"): a build that reads a layer back — here a copy step whose
# destination goes through a symlink a RUN step made — keeps what it read in the store, and
# later builds take the tree from there. The images are the ones a store without listings
# builds; a damaged listing is reported by `cache verify`, and the next build reads the layer
# again and writes the listing anew; a damaged layer is called corrupt and gets no listing.
source "$(dirname "$0")/../lib.sh"
need_root
need runc jq python3
bb=$(busybox_context)

write ctx/listed.toml <<EOF
[image]
name = "listed"
epoch = 1700000000

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /made && /bin/busybox ln -s /made /link"]

[[step]]
copy = [{ src = "f.txt", dest = "/link/f.txt" }]
EOF
printf 'one\n' >ctx/f.txt
store=$TEST_DIR/store
# flip_middle_byte FILE: damages FILE in place, one bit of its middle byte.
flip_middle_byte() {
    python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1
open(p, "wb").write(bytes(b))
PY
}

step "the copy goes through the RUN layer's symlink; that layer's listing is kept"
d1=$(build ctx/listed.toml)
mapfile -t layers < <(image_layers "$store" listed:latest)
assert_eq 3 "${#layers[@]}" "three layers"
assert_eq "one" "$(tar_cat "${layers[2]}" made/f.txt)" "f.txt lands in /made, through /link"
run_hex=$(basename "${layers[1]}")
listing=$store/listings/${run_hex:0:2}/$run_hex
assert_exists "$listing"
assert_eq "factory-listing 1" "$(head -n 1 "$listing")" "the listing's first line"
assert_eq "$d1" "$(build ctx/listed.toml)" "a no-op rebuild"

step "a change after the RUN step is built from the listing, as a store without one builds it"
printf 'two\n' >ctx/f.txt
before=$(stat -c %Y.%i "$listing")
d2=$(build ctx/listed.toml)
assert_ne "$d1" "$d2" "f.txt changed"
assert_eq "$before" "$(stat -c %Y.%i "$listing")" "the listing was read, not written again"
assert_eq "$d2" "$(FACTORY_CACHE=$TEST_DIR/cold build ctx/listed.toml)" "a cold store's digest"

step "a damaged listing: verify names it; the next build reads the layer and writes it anew"
flip_middle_byte "$listing"
expect_exit 1 cache verify
assert_contains "$OUT" "problem: listing of blob sha256:$run_hex is unreadable" "verify names it"
assert_contains "$OUT" "checksum mismatch" "and why"
printf 'three\n' >ctx/f.txt
d3=$(build ctx/listed.toml)
assert_eq "$(FACTORY_CACHE=$TEST_DIR/cold2 build ctx/listed.toml)" "$d3" "a cold store's digest"
assert_ne "$before" "$(stat -c %Y.%i "$listing")" "the listing was written anew"
expect_ok cache verify
assert_match "checked [0-9]+ blobs, [0-9]+ step records, [0-9]+ block maps, [1-9][0-9]* listings" \
    "$OUT" "the listing is whole again"

step "a copy out of a built stage, and out of that copy: the same images as a cold store's"
write ctx/multi.toml <<EOF2
[image]
name = "multi-listed"
epoch = 1700000000
stage = "last"

[contexts]
busybox = "$bb"

[args]
WORD = "built"

[stage.build.base]
image = "scratch"

[[stage.build.step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[stage.build.step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /out && echo \${WORD} >/out/a && /bin/busybox seq 1 200000 >/out/big"]

[stage.final.base]
image = "scratch"

[[stage.final.step]]
copy = [{ from = "build", src = "/out/", dest = "/app/" }]

[stage.last.base]
image = "scratch"

[[stage.last.step]]
copy = [{ from = "final", src = "/app/a", dest = "/a" }, { from = "final", src = "/app/big", dest = "/big" }]
EOF2
m1=$(build ctx/multi.toml)
layer=$(image_layers "$store" multi-listed:latest)
assert_eq "built" "$(tar_cat "$layer" a)" "the file, through a stage that never took it out"
assert_eq "$(seq 1 200000 | sha256sum)" "$(tar_cat "$layer" big | sha256sum)" "the big one"
assert_eq "$m1" "$(FACTORY_CACHE=$TEST_DIR/cold3 build ctx/multi.toml)" "a cold store's digest"
expect_ok build ctx/multi.toml
assert_contains "$ERR" "[last 1/1] cached" "a no-op"
m2=$(build ctx/multi.toml --arg WORD=again)
assert_eq "again" "$(tar_cat "$(image_layers "$store" multi-listed:latest)" a)" "the new content"
assert_eq "$m2" "$(FACTORY_CACHE=$TEST_DIR/cold4 build ctx/multi.toml --arg WORD=again)" \
    "a cold store's digest, after a change"

step "a damaged layer and no listing: the build calls the blob corrupt and keeps no listing"
rm -f "$listing"
flip_middle_byte "${layers[1]}"
printf 'four\n' >ctx/f.txt
expect_exit 1 build ctx/listed.toml
assert_contains "$(error_line)" "blob sha256:$run_hex is corrupt: content hashes to sha256:" "what and why"
assert_missing "$listing"
