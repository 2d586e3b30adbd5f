# Incremental layers (docs/performance.md "Incremental layers"): after an edit of one file
# in a big copy step, the rebuild copies the unchanged compressed blocks of the step's last
# layer instead of compressing them — and resumes both SHA-256s after the unchanged leading
# blocks, without reading their files — and its image is the image a cold build of the same
# tree gives in a new store, for edits at the start, middle and end, a file that grows, one
# that shrinks, one added, one removed. A damaged block map only costs the reuse. `cache
# verify` checks the block maps; `cache prune` removes those of removed layers. gzip layers, or
# zstd with COMPRESSION=zstd (ctest runs both: integration.incremental_zstd).
source "$(dirname "$0")/../lib.sh"
need jq python3
compression=${COMPRESSION:-gzip}
case $compression in
gzip) map_format="gzip-members/1 " ;;
zstd) map_format="zstd-frames/1 " ;;
*) fail "COMPRESSION=$compression: expected gzip or zstd" ;;
esac

python3 "$FACTORY_SOURCE_DIR/bench/gen_tree.py" ctx/tree 1200 12 2 >/dev/null
write ctx/big.toml <<EOF2
[image]
name = "big"
compression = "$compression"

[[step]]
copy = [{ src = "tree", dest = "/data/" }]
EOF2
store=$TEST_DIR/store
mapfile -t files < <(cd ctx/tree && find . -type f -name '*' ! -name big.bin | LC_ALL=C sort)
(( ${#files[@]} > 1000 )) || fail "the generated tree has ${#files[@]} files"

build --cache "$store" ctx/big.toml >/dev/null
maps=$(find "$store/blocks" -type f | wc -l)
assert_eq 1 "$maps" "one block map for the one big layer"
assert_contains "$(sed -n 2p "$(find "$store/blocks" -type f)")" "format $map_format" \
    "the map is of $compression blocks"
media=$(jq -r '.layers[0].mediaType' "$(blob "$store" "$(layout_digest "$store" big:latest)")")
assert_eq "application/vnd.oci.image.layer.v1.tar+$compression" "$media" "the layer's media type"

# rebuild_matches_cold WHAT [SKIPS]: an incremental rebuild reuses blocks (and, with SKIPS,
# skips reading the unchanged leading part of the tree), and its digest is a cold build's in a
# new store.
n=0
rebuild_matches_cold() {
    n=$((n + 1))
    local warm cold
    warm=$(build --cache "$store" ctx/big.toml)
    ERR=$(cat "$TEST_DIR/last.stderr") # build ran in a subshell
    assert_match "reused [0-9]+ of [0-9]+ compressed blocks" "$ERR" "$1: blocks reused"
    if [[ ${2:-} == skips ]]; then
        assert_match "not compressed again, [0-9.]+ [KMG]i?B not read again" "$ERR" \
            "$1: the unchanged start is not read"
    fi
    local reused total
    reused=$(grep -oE 'reused [0-9]+ of' <<<"$ERR" | grep -oE '[0-9]+')
    total=$(grep -oE 'of [0-9]+ compressed' <<<"$ERR" | grep -oE '[0-9]+')
    (( total - reused <= 4 )) || fail "$1: $((total - reused)) of $total blocks compressed again"
    cold=$(build --cache "$TEST_DIR/cold-$n" ctx/big.toml)
    ERR=$(cat "$TEST_DIR/last.stderr")
    assert_not_contains "$ERR" "reused" "$1: a cold build reuses nothing"
    assert_eq "$cold" "$warm" "$1: incremental image = cold image"
    rm -rf "$TEST_DIR/cold-$n"
}

step "edit at the start"
echo x >>"ctx/tree/${files[1]}"
rebuild_matches_cold start
step "edit in the middle"
echo "one more line" >>"ctx/tree/${files[${#files[@]} / 2]}"
rebuild_matches_cold middle skips
step "edit at the end"
echo y >>"ctx/tree/${files[${#files[@]} - 1]}"
rebuild_matches_cold end skips
step "a file grows"
head -c 200000 /dev/zero | tr '\0' g >>"ctx/tree/${files[${#files[@]} / 3]}"
rebuild_matches_cold grow skips
step "a file shrinks"
truncate -s 10 "ctx/tree/${files[2 * ${#files[@]} / 3]}"
rebuild_matches_cold shrink skips
step "a file is added"
echo new >"ctx/tree/${files[${#files[@]} / 4]}-new"
rebuild_matches_cold add skips
step "a file is removed"
rm "ctx/tree/${files[3 * ${#files[@]} / 4]}"
rebuild_matches_cold remove skips

layer_hex=$(basename "$(image_layers "$store" big:latest | head -n 1)")

step "a damaged block map costs only the reuse"
last_map="$store/blocks/${layer_hex:0:2}/$layer_hex"
assert_match "^factory-blocks 2" "$(head -n 1 "$last_map")" "maps carry midstates"
truncate -s 3000 "$last_map"
echo "after the damage" >>"ctx/tree/${files[${#files[@]} / 2]}"
warm=$(build --cache "$store" ctx/big.toml)
assert_not_contains "$(cat "$TEST_DIR/last.stderr")" "reused" "a truncated map is not used"
cold=$(build --cache "$TEST_DIR/cold-damaged" ctx/big.toml)
assert_eq "$cold" "$warm" "damaged map: incremental image = cold image"
rm -rf "$TEST_DIR/cold-damaged"
expect_exit 1 --cache "$store" cache verify
assert_contains "$OUT" "block map of blob sha256:$layer_hex" "verify names the truncated map"
rm "$last_map"
layer_hex=$(basename "$(image_layers "$store" big:latest | head -n 1)")

step "cache verify checks the block maps"
expect_ok --cache "$store" cache verify
assert_match "checked [0-9]+ blobs, [0-9]+ step records, 8 block maps" "$OUT" "every layer's map checked"
map=$(find "$store/blocks" -type f ! -name "$layer_hex" | head -n 1)
sed -i '3s/ [0-9][0-9]* / 1 /' "$map"
expect_exit 1 --cache "$store" cache verify
assert_contains "$OUT" "block map of blob sha256:$(basename "$map")" "a bad map is a problem"
expect_ok --cache "$store" cache verify --repair
assert_missing "$map"
expect_ok --cache "$store" cache verify

step "cache prune removes the maps of removed layers"
# Only the ref's layer stays: every record is older than 0 s.
expect_ok --cache "$store" cache prune --older-than 0s
assert_match "freed [^:]+: [0-9]+ step records, [0-9]+ blobs, 6 block maps" "$OUT" "prune counts block maps"
assert_eq "$store/blocks/${layer_hex:0:2}/$layer_hex" "$(find "$store/blocks" -type f)" \
    "only the map of the ref's layer is kept"
expect_ok --cache "$store" cache verify
