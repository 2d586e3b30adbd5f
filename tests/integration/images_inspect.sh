# `factory images` lists the store's refs (NAME:TAG, digest, size); `factory inspect` shows a
# ref's config and layers, as text or --json.
source "$(dirname "$0")/../lib.sh"
need jq

hello=$FACTORY_SOURCE_DIR/recipes/hello.toml

step "no store yet: an empty list, and nothing created"
expect_ok images --cache "$TEST_DIR/empty"
assert_eq "IMAGE                                    DIGEST              SIZE" "$OUT" "just the header"
assert_missing "$TEST_DIR/empty"

step "images lists what was built"
digest=$(build "$hello")
hex=${digest#sha256:}
mkdir -p ctx && echo x >ctx/x
write ctx/other.toml <<'EOF'
[image]
name = "example.com/team/other"
tags = ["1.0", "latest"]

[[step]]
copy = [{ src = "x", dest = "/x" }]
EOF
other=$(build ctx/other.toml)
expect_ok images
line=$(grep -E '(^|[[:space:]])hello:latest([[:space:]]|$)' <<<"$OUT" || true)
[[ -n $line ]] || fail "images does not list hello:latest"$'\n'"$OUT"
assert_contains "$line" "${hex:0:12}" "hello's digest (at least its first 12 hex digits)"
size=$(jq '[.config.size, .layers[].size] | add' "$(blob "$TEST_DIR/store" "$digest")")
# The size column: in bytes, or rounded in a human unit (kB, MB, KiB, MiB …).
if ! grep -qE "(^|[[:space:]])$size([[:space:]]|$)" <<<"$line"; then
    assert_match '[0-9.]+ ?([kKMG]i?B|B)' "$line" "a size on hello's line (total $size bytes)"
fi
for ref in example.com/team/other:1.0 example.com/team/other:latest; do
    grep -qE "(^|[[:space:]])$ref([[:space:]]|$)" <<<"$OUT" || fail "images does not list $ref"$'\n'"$OUT"
done
assert_contains "$OUT" "${other:7:12}" "other's digest"
expect_ok images --cache "$TEST_DIR/store"
assert_contains "$OUT" "hello:latest" "--cache"

step "images --json: one JSON object per image"
expect_ok images --json
n=0
while IFS= read -r l; do
    [[ -z $l ]] && continue
    jq -e 'type == "object"' <<<"$l" >/dev/null 2>&1 || fail "images --json line is not a JSON object: $l"
    n=$((n + 1))
done <<<"$OUT"
assert_eq 3 "$n" "images --json: hello:latest, other:1.0, other:latest"
assert_contains "$OUT" "$digest" "images --json has the full digest"

step "inspect (text)"
expect_ok inspect hello:latest
for d in $(jq -r '.layers[].digest' "$(blob "$TEST_DIR/store" "$digest")"); do
    assert_contains "$OUT" "$d" "inspect lists layer $d"
done
assert_contains "$OUT" "$digest" "inspect shows the manifest digest"
assert_contains "$OUT" "/bin/hello" "inspect shows the command"
assert_contains "$OUT" "PATH=/bin" "inspect shows the environment"

step "inspect --json"
expect_ok inspect --json hello:latest
jq -e . <<<"$OUT" >/dev/null || fail "inspect --json is not JSON"$'\n'"$OUT"
assert_contains "$OUT" "$digest" "--json has the manifest digest"
assert_contains "$OUT" '"/bin/hello"' "--json has the command"
config_digest=$(config_digest "$TEST_DIR/store" "$digest")
assert_contains "$OUT" "$config_digest" "--json has the config digest"

step "inspect of a name without tag means :latest; unknown refs fail"
expect_ok inspect hello
assert_contains "$OUT" "$digest" "inspect hello = hello:latest"
# One condition, one code: an image that is not in the store is exit 2 for every command.
expect_exit 2 inspect nosuch:latest
assert_eq "factory: error: no image 'nosuch:latest' in the store $TEST_DIR/store" "$(error_line)" \
    "the unknown ref is named"
expect_exit 2 export nosuch:latest "oci:$TEST_DIR/nosuch"
assert_eq "factory: error: no image 'nosuch:latest' in the store $TEST_DIR/store" "$(error_line)" "export"
expect_exit 2 inspect --cache "$TEST_DIR/no-store" hello
assert_eq "factory: error: no image 'hello' in the store $TEST_DIR/no-store" "$(error_line)" "no store"
assert_missing "$TEST_DIR/no-store"
expect_exit 2 inspect
expect_ok inspect "$digest"
assert_contains "$OUT" "/bin/hello" "inspect sha256:DIGEST"

step "a unique digest prefix (>= 12 hex, with or without sha256:) names the image, as in docker"
short=$(grep -E '(^|[[:space:]])hello:latest([[:space:]]|$)' <<<"$(
    "$FACTORY" images
)" | awk '{print $2}')
assert_eq "${digest:0:19}" "$short" "images prints sha256: and 12 hex digits"
for prefix in "$short" "${hex:0:12}" "${hex:0:20}" "$hex"; do
    expect_ok inspect "$prefix"
    assert_contains "$OUT" "Digest:       $digest" "inspect $prefix"
done
expect_exit 2 inspect "${hex:0:11}"
assert_contains "$(error_line)" "no image '${hex:0:11}'" "11 hex digits are not a prefix"
expect_ok export "$short" "oci:$TEST_DIR/by-prefix"
assert_eq "$digest" "$(layout_digest "$TEST_DIR/by-prefix" latest)" "export by digest prefix"
echo "PASS: $TEST_NAME"
