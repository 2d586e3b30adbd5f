# Bases by registry reference: an image factory never made (skopeo's Docker schema 2 copy of
# hello) as `base = "HOST/REPO:TAG"` and `…@sha256:…`; the tag resolved once per build and
# printed; the digest is the key, so an unmoved tag is a cache hit and a moved one rebuilds;
# --pull never|missing|always.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need skopeo jq python3
build_hello
run_registry plain
expect_ok export hello:latest "oci:$TEST_DIR/hello-oci:h"
skopeo copy -q --format v2s2 --dest-tls-verify=false "oci:$TEST_DIR/hello-oci:h" "docker://$REGISTRY/base/hello:1" >/dev/null
base_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/base/hello:1")
# Every request through a proxy, to count what a build asks.
echo '[]' >"$TEST_DIR/rules.json"
run_python_server proxy registry_fault_proxy.py "$REGISTRY" "$TEST_DIR/rules.json" "$TEST_DIR/requests"
P=127.0.0.1:$SERVER_PORT
mkdir -p "$TEST_DIR/app"
echo "built on a registry base" >"$TEST_DIR/app/note.txt"
write_recipe() { # write_recipe BASE
    cat >"$TEST_DIR/app/recipe.toml" <<EOT
[image]
name = "on-base"
[base]
image = "$1"
[[step]]
copy = [{ src = "note.txt", dest = "/note.txt" }]
[config]
cmd = ["/bin/cat", "/note.txt"]
EOT
}
write_recipe "$P/base/hello:1"
export FACTORY_CACHE=$TEST_DIR/store-b
opts=(--tls-verify=false --progress plain)
# rebuild ARGS…: a build in this shell (ERR stays readable); sets D to the manifest digest.
rebuild() {
    expect_ok build "$@"
    D=$(last_line)
    D=${D##* }
}

step "first build pulls the base and prints the resolved digest"
rebuild "${opts[@]}" "$TEST_DIR/app/recipe.toml"
d1=$D
assert_contains "$ERR" "base: $P/base/hello:1 → $base_digest (pulled)" "the resolved digest in the progress"
layers=$(jq -r '.layers[].digest' "$(blob "$FACTORY_CACHE" "$d1")" | head -n2 | tr '\n' ' ')
assert_eq "$(jq -r '.layers[].digest' "$(blob "$FACTORY_CACHE" "$base_digest")" | tr '\n' ' ')" "$layers" \
    "the base's layers, byte for byte"
assert_eq "sha256:$(jq -r '.config.digest' "$(blob "$FACTORY_CACHE" "$d1")" | cut -d: -f2)" \
    "$(jq -r .config.digest "$(blob "$FACTORY_CACHE" "$d1")")" "a config"

step "an unmoved tag: one HEAD, everything cached, same digest"
: >"$TEST_DIR/requests"
rebuild "${opts[@]}" "$TEST_DIR/app/recipe.toml"
d2=$D
assert_eq "$d1" "$d2" "same image"
assert_contains "$ERR" "(unchanged)" "the tag did not move"
assert_eq "HEAD /v2/base/hello/manifests/1" "$(grep -v ' GET /v2/ ' "$TEST_DIR/requests" | cut -d' ' -f2,3)" \
    "one HEAD request (besides the ping)"

step "--pull never: no request at all"
: >"$TEST_DIR/requests"
rebuild "${opts[@]}" --pull never "$TEST_DIR/app/recipe.toml"
d3=$D
assert_eq "$d1" "$d3" "same image from the store"
[[ ! -s $TEST_DIR/requests ]] || fail "--pull never asked the registry: $(cat "$TEST_DIR/requests")"
FACTORY_CACHE=$TEST_DIR/empty expect_exit 1 build "${opts[@]}" --pull never "$TEST_DIR/app/recipe.toml"
assert_contains "$(error_line)" "base $P/base/hello:1 is not in the store and --pull is never" "never, absent"
assert_match "^factory: error: $TEST_DIR/app/recipe.toml:[0-9]+:[0-9]+: base " "$(error_line)" "file:line:col"

step "a moved tag rebuilds on the new base"
expect_ok push --tls-verify=false on-base:latest "$REGISTRY/base/hello:1"
moved=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/base/hello:1")
rebuild "${opts[@]}" "$TEST_DIR/app/recipe.toml"
d4=$D
assert_contains "$ERR" "base: $P/base/hello:1 → $moved (pulled)" "the new digest"
assert_ne "$d1" "$d4" "a new image on the moved tag"

step "a digest reference: no request once stored; always asks"
write_recipe "$P/base/hello@$base_digest"
rebuild "${opts[@]}" "$TEST_DIR/app/recipe.toml"
d5=$D
assert_eq "$d1" "$d5" "the digest reference gives the first image again"
: >"$TEST_DIR/requests"
rebuild "${opts[@]}" "$TEST_DIR/app/recipe.toml"
[[ ! -s $TEST_DIR/requests ]] || fail "a stored digest asked the registry: $(cat "$TEST_DIR/requests")"
rebuild "${opts[@]}" --pull always "$TEST_DIR/app/recipe.toml"
grep -q "GET /v2/base/hello/manifests/$base_digest" "$TEST_DIR/requests" || fail "--pull always did not ask"
expect_exit 2 build --pull sometimes "$TEST_DIR/app/recipe.toml"
assert_contains "$(error_line)" "--pull sometimes: expected never, missing or always" "bad --pull"

step "the image built on the registry base runs its base's busybox"
expect_ok export on-base:latest "rootfs:$TEST_DIR/rootfs"
assert_eq "built on a registry base" "$(cat "$TEST_DIR/rootfs/note.txt")" "the step's file"
assert_exists "$TEST_DIR/rootfs/bin/busybox"

step "build --check: the registry base is taken from the store, never pulled again"
write_recipe "$P/base/hello:1"
rebuild "${opts[@]}" "$TEST_DIR/app/recipe.toml"
: >"$TEST_DIR/requests"
expect_ok build "${opts[@]}" --check "$TEST_DIR/app/recipe.toml"
assert_match "^on-base:latest $DIGEST_RE: 2 steps reproduced\$" "$(last_line)" "verdict"
assert_contains "$OUT" "same     main base" "the base compared"
assert_eq "HEAD /v2/base/hello/manifests/1" "$(grep -v ' GET /v2/ ' "$TEST_DIR/requests" | cut -d' ' -f2,3)" \
    "the build's one HEAD; nothing from the rebuild"
echo "PASS: $TEST_NAME"
