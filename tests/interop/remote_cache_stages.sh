# A stage the output copies from, through the registry cache (docs/cache.md "Remote cache"):
# a fresh agent whose steps all hit downloads the output's layers and the listings of the
# builder's layers, never the builder's layers; a copy that misses downloads the one layer it
# takes a file out of. A cache written without listings still works (the layers are read), and
# a listing that lies about its layer stops the build before anything is recorded from it.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need jq python3 crun curl
need_root

run_registry plain
echo '[]' >"$TEST_DIR/rules.json"
run_python_server proxy registry_fault_proxy.py "$REGISTRY" "$TEST_DIR/rules.json" "$TEST_DIR/proxy.requests"
P=127.0.0.1:$SERVER_PORT
opts=(--tls-verify=false --progress plain)

bb=$(busybox_context)
# recipe FILE DEST: a builder stage writing random bytes in a RUN step, and a scratch final
# stage copying the result to DEST.
recipe() {
    write "$1" <<TOML
[image]
name = "ms"
stage = "final"

[contexts]
busybox = "$bb"

[stage.builder]
[[stage.builder.step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[stage.builder.step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /out && /bin/busybox head -c 100000 /dev/urandom > /out/tool"]

[stage.final]
base = "scratch"
[[stage.final.step]]
copy = { from = "builder", src = "/out/tool", dest = "$2" }
TOML
}
recipe ctx/a.toml /tool
recipe ctx/c.toml /bin/tool

# blobs_got: the blobs fetched through the proxy since it was last cleared, sorted.
blobs_got() {
    grep " GET /v2/ci/ms/blobs/" "$TEST_DIR/proxy.requests" | sed 's|.*/blobs/\([^ ]*\).*|\1|' | sort -u
}
manifest() { curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/ci/ms/manifests/$1"; }

step "agent A builds and exports, with the flags of every agent (the cache is empty yet)"
agent A
built "${opts[@]}" --cache-from "docker://$P/ci/ms:main" --cache-to "docker://$P/ci/ms:main" ctx/a.toml
A=$DIGEST
assert_not_contains "$ERR" "warning: --cache-from" "an empty cache is no warning"
builder_layers=$(for r in "$FACTORY_CACHE"/actions/*/*.json; do jq -r '.result.layer.digest // empty' "$r"; done | sort -u)
final_layers=$(layer_digests "$FACTORY_CACHE" "$A" | sort)
tool_a=$(tar_cat "$(blob "$FACTORY_CACHE" "$final_layers")" tool | sha256sum)
cfg_digest=$(manifest main | jq -r .config.digest)
cfg=$TEST_DIR/config.json
curl -s "http://$REGISTRY/v2/ci/ms/blobs/$cfg_digest" >"$cfg"
run_layer=$(jq -r '.entries[] | select(.record.fields | tostring | contains("head -c 100000")) | .record.result.layer.digest' "$cfg")
busybox_layer=$(grep -vxF -e "$run_layer" -e "$final_layers" <<<"$builder_layers")
assert_match "^sha256:[0-9a-f]{64}$" "$run_layer" "the RUN step's layer"
assert_match "^sha256:[0-9a-f]{64}$" "$busybox_layer" "the busybox copy's layer"
assert_eq 2 "$(jq '.listings | length' "$cfg")" "the cache carries the listings of the builder's two layers"
assert_eq "$(printf '%s\n' "$run_layer" "$busybox_layer" | sort)" "$(jq -r '.listings[].layer' "$cfg" | sort)" \
    "the listed layers are the builder's"
listings=$(jq -r '.listings[].listing.digest' "$cfg" | sort)

step "agent B (empty store): every step a hit, without the builder's layers"
agent B
: >"$TEST_DIR/proxy.requests"
built "${opts[@]}" --cache-from "docker://$P/ci/ms:main" ctx/a.toml
assert_eq "$A" "$DIGEST" "B's digest is A's (the RUN step wrote random bytes)"
assert_not_contains "$ERR" "warning: --cache" "no cache warning"
assert_contains "$ERR" "cache: 2 step records stay in the registry cache (their layers were not needed here); a build without --cache-from makes those steps again" \
    "B says the builder's steps were left in the registry"
expect_ok cache stats --json
assert_eq 0 "$(jq .misses <<<"$OUT")" "nothing ran on B"
assert_eq "$(printf '%s\n' "$cfg_digest" $final_layers $listings | sort)" "$(blobs_got)" \
    "B fetched the config, the image's layer and the builder's listings: no builder layer"
assert_eq "GET /v2/ci/ms/manifests/main" "$(grep " /v2/ci/ms/manifests/" "$TEST_DIR/proxy.requests" | cut -d' ' -f2,3)" \
    "the cache's manifest cost one request"
expect_ok cache verify
assert_contains "$OUT" "clean" "B's store verifies"
: >"$TEST_DIR/proxy.requests"
built "${opts[@]}" --cache-from "docker://$P/ci/ms:main" ctx/a.toml
assert_eq "$A" "$DIGEST" "B builds A's digest again"
assert_eq "$cfg_digest" "$(blobs_got)" \
    "the image's layer and the listings are in B's store now; only the cache config is read"

step "agent B pushes the image elsewhere on the registry: the layer is mounted from the cache"
expect_ok push --tls-verify=false ms:latest "docker://$P/team/ms:1"
assert_contains "$ERR" "1 uploaded" "the image's config, made on B, is uploaded"
assert_contains "$ERR" ", 1 mounted, 0 already there" "its layer is mounted from ci/ms"
assert_eq "$A" "$(curl -s -o /dev/null -w '%header{docker-content-digest}' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/team/ms/manifests/1")" \
    "the pushed image is A's"

step "agent C: a copy out of the builder that misses downloads the one layer it reads"
agent C
: >"$TEST_DIR/proxy.requests"
built "${opts[@]}" --cache-from "docker://$P/ci/ms:main" ctx/c.toml
C=$DIGEST
got=$(blobs_got)
assert_contains "$got" "$run_layer" "the RUN layer holding /out/tool was downloaded"
assert_not_contains "$got" "$busybox_layer" "the busybox layer was not"
expect_ok cache stats --json
assert_eq 1 "$(jq .misses <<<"$OUT")" "only the changed copy ran"
tool_c=$(tar_cat "$(blob "$FACTORY_CACHE" "$(layer_digests "$FACTORY_CACHE" "$C")")" bin/tool | sha256sum)
assert_eq "$tool_a" "$tool_c" "the copy holds A's bytes"
assert_exists "$FACTORY_CACHE/listings/${run_layer:7:2}/${run_layer#sha256:}"
expect_ok cache verify
assert_contains "$OUT" "clean" "C's store verifies, the checked listing with it"

# republish TAG JQ: the cache's config changed by JQ, under TAG (same layers).
republish() {
    local file=$TEST_DIR/$1.json d loc
    jq -c "$2" "$cfg" >"$file"
    d=sha256:$(sha256sum "$file" | cut -d' ' -f1)
    loc=$(curl -si -X POST "http://$REGISTRY/v2/ci/ms/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [[ $loc == http* ]] || loc=http://$REGISTRY$loc
    [[ $loc == *\?* ]] && loc="$loc&digest=$d" || loc="$loc?digest=$d"
    curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$loc" >/dev/null ||
        fail "upload of the $1 config"
    manifest main | jq -c --arg d "$d" --argjson s "$(stat -c %s "$file")" \
        '.config.digest = $d | .config.size = $s' >"$file.manifest"
    curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$file.manifest" "http://$REGISTRY/v2/ci/ms/manifests/$1" >/dev/null ||
        fail "put manifest ci/ms:$1"
}

step "a cache written before listings were shared: the builder's layers are read instead"
republish old 'del(.listings)'
agent D
: >"$TEST_DIR/proxy.requests"
built "${opts[@]}" --cache-from "docker://$P/ci/ms:old" ctx/a.toml
assert_eq "$A" "$DIGEST" "A's digest from a cache without listings"
assert_not_contains "$ERR" "warning: --cache" "no cache warning"
assert_contains "$(blobs_got)" "$busybox_layer" "the builder's layers were downloaded to be read"

step "a listing that lies about its layer: the build stops before it records anything"
republish swapped '(.listings | map(.listing)) as $l | .listings[0].listing = $l[1] | .listings[1].listing = $l[0]'
agent E
expect_exit 1 build "${opts[@]}" --cache-from "docker://$P/ci/ms:swapped" ctx/c.toml
assert_contains "$(error_line)" "the listing of layer " "what"
assert_contains "$(error_line)" " in the registry cache does not match the layer (a damaged or hostile cache), so keys made from it can't be trusted" "why"
for r in "$FACTORY_CACHE"/actions/*/*.json; do
    l=$(jq -r '.result.layer.digest // empty' "$r")
    [[ -z $l ]] || grep -qxF -e "$l" <<<"$builder_layers" || fail "a record of a layer made from the lying listing: $r"
done
expect_ok images
assert_not_contains "$OUT" "ms:latest" "no image was tagged"
assert_missing "$FACTORY_CACHE/listings/${busybox_layer:7:2}/${busybox_layer#sha256:}"
expect_ok cache verify
assert_contains "$OUT" "clean" "E's store verifies"
