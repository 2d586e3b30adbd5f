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
run_factory inspect nosuch:latest
[[ $RC -eq 1 || $RC -eq 2 ]] || fail "inspect of an unknown ref: exit $RC"
assert_contains "$(error_line)" "nosuch:latest" "the unknown ref is named"
expect_exit 2 inspect
expect_ok inspect "$digest"
assert_contains "$OUT" "/bin/hello" "inspect sha256:DIGEST"
echo "PASS: $TEST_NAME"
