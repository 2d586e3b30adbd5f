# Listings (docs/cache.md "Listings"): a build that reads a layer back — here a copy step whose
# destination goes through a symlink a RUN step made — keeps what it read in the store, and
# later builds take the tree from there. The images are the ones a store without listings
# builds; a damaged listing is reported by `cache verify`, and the next build reads the layer
# again and writes the listing anew.
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
python3 - "$listing" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1
open(p, "wb").write(bytes(b))
PY
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
