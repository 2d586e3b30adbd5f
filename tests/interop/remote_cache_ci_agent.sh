# recipes/ci-agent.toml (a Debian bootstrap and apt-get) through the registry cache: agent A
# builds it with --cache-to; agent B, with an empty store and another HOME, builds it with
# --cache-from: every step a hit, A's digest, and only the image's layers downloaded (counted
# at the tests' proxy in front of docker-registry).
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need mmdebstrap jq python3 crun curl
need_root

run_registry plain
echo '[]' >"$TEST_DIR/rules.json"
run_python_server proxy registry_fault_proxy.py "$REGISTRY" "$TEST_DIR/rules.json" "$TEST_DIR/proxy.requests"
P=127.0.0.1:$SERVER_PORT
recipe=$FACTORY_SOURCE_DIR/recipes/ci-agent.toml
opts=(--tls-verify=false --progress plain)

step "agent A builds and exports"
export FACTORY_CACHE=$TEST_DIR/A/store HOME=$TEST_DIR/A/home
mkdir -p "$HOME"
A=$(build "${opts[@]}" --cache-to "docker://$P/ci/agent:bookworm" "$recipe")

step "agent B: an empty store, every step from the registry"
export FACTORY_CACHE=$TEST_DIR/B/store HOME=$TEST_DIR/B/home
mkdir -p "$HOME"
: >"$TEST_DIR/proxy.requests"
B=$(build "${opts[@]}" --cache-from "docker://$P/ci/agent:bookworm" "$recipe")
assert_eq "$A" "$B" "B's digest is A's"
expect_ok cache stats --json
assert_eq 0 "$(jq .misses <<<"$OUT")" "nothing was built on B"
assert_ne 0 "$(jq .remote_hits <<<"$OUT")" "the hits came from the registry"
config=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY/v2/ci/agent/manifests/bookworm" | jq -r .config.digest)
want=$(printf '%s\n' "$config" $(jq -r '.layers[].digest' "$(blob "$FACTORY_CACHE" "$B")") | sort -u)
got=$(grep " GET /v2/ci/agent/blobs/" "$TEST_DIR/proxy.requests" | sed 's|.*/blobs/\([^ ]*\).*|\1|' | sort -u)
assert_eq "$want" "$got" "B downloaded the cache config and the image's layers only"
assert_eq "" "$(ls "$FACTORY_CACHE/snapshots" 2>/dev/null)" "no layer was unpacked: nothing ran"
