# The registry build cache (docs/cache.md "Remote cache") between agents with their own store
# and HOME, against a real docker-registry behind the tests' proxy: every step a hit on a fresh
# agent, the same digest for a RUN step that writes random bytes, only the output image's layers
# downloaded, `factory shell` and `run` building from the cache as well, cache mounts restored
# for a step that misses, two exports merged, and a registry that is down, failing or hostile
# costing one warning and nothing else.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need jq python3 crun curl
need_root

run_registry plain
run_fault_proxy
rules=$RULES
opts=(--tls-verify=false --progress plain)
set_rules() {
    printf '%s' "$1" >"$rules.tmp"
    mv "$rules.tmp" "$rules"
}

bb=$(busybox_context)
# recipe FILE LAST_RUN: busybox, a RUN step writing random bytes and filling a cache mount, a
# last RUN step, and a stage the output never reads.
recipe() {
    write "$1" <<TOML
[image]
name = "rc"
stage = "main"

[contexts]
busybox = "$bb"

[stage.side]
[[stage.side.step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[stage.side.step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox head -c 4096 /dev/urandom > /side"]

[stage.main]
[[stage.main.step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[stage.main.step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox head -c 64 /dev/urandom > /random; [ -f /var/cache/pkg/warm ] || /bin/busybox head -c 32 /dev/urandom | /bin/busybox od -x > /var/cache/pkg/warm"]
cache = ["/var/cache/pkg"]
[[stage.main.step]]
run = ["/bin/busybox", "sh", "-c", "$2"]
cache = ["/var/cache/pkg"]
TOML
}
recipe ctx/a.toml "/bin/busybox echo one > /one"
recipe ctx/b.toml "/bin/busybox cp /var/cache/pkg/warm /seen"
write ctx/other.toml <<TOML
[image]
name = "other"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]
[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox head -c 64 /dev/urandom > /other"]
TOML

step "agent A builds with --cache-to"
agent A
built "${opts[@]}" --cache-to "docker://$P/ci/cache:main" ctx/a.toml
A=$DIGEST
assert_contains "$ERR" "cache: exported 4 records, 1 mounts to $P/ci/cache:main" "A exports every step and the mount"
warm_a=$(cat "$FACTORY_CACHE/mounts/"*/warm)

step "agent B (empty store, other HOME) with --cache-from: all hits, A's digest, only the output's layers"
agent B
: >"$TEST_DIR/proxy.requests"
built "${opts[@]}" --cache-from "docker://$P/ci/cache:main" ctx/a.toml
B=$DIGEST
assert_eq "$A" "$B" "B's digest is A's (its RUN step wrote random bytes)"
assert_not_contains "$ERR" "warning: --cache" "no cache warning"
expect_ok cache stats --json
assert_eq 0 "$(jq .misses <<<"$OUT")" "no step ran on B"
assert_eq 5 "$(jq .hits <<<"$OUT")" "every step a hit"
# main 1/3 and side 1/2 share a key: whichever runs second finds it in the store, or, when
# side's (a stage nothing reads) came first and left it remote, in the registry too.
assert_match "^[45]$" "$(jq .remote_hits <<<"$OUT")" "the hits came from the registry"
layers=$(jq -r '.layers[].digest' "$(blob "$FACTORY_CACHE" "$B")" | sort)
cache_config=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/ci/cache/manifests/main" | jq -r .config.digest)
got=$(grep " GET /v2/ci/cache/blobs/" "$TEST_DIR/proxy.requests" | sed 's|.*/blobs/\([^ ]*\).*|\1|' | sort -u)
assert_eq "$(printf '%s\n' "$cache_config" $layers | sort)" "$got" \
    "B fetched the cache config and the output image's layers, nothing else"
assert_eq 3 "$(jq '.layers | length' "$(blob "$FACTORY_CACHE" "$B")")" "the output has 3 layers"
expect_ok cache verify
assert_contains "$OUT" "clean" "B's store verifies"
assert_eq "$A" "$(build "${opts[@]}" ctx/a.toml)" "B rebuilds from its own store alone"

step "a developer's empty store: factory shell and run build the recipe from the cache too"
agent S
expect_ok shell --tls-verify=false --cache-from "docker://$P/ci/cache:main" ctx/a.toml -- /bin/busybox cat /one
assert_eq "one" "$OUT" "the shell is in the image's file system"
random_a=$(tar_cat "$(blob "$TEST_DIR/A/store" "$(jq -r '.layers[1].digest' "$(blob "$TEST_DIR/A/store" "$A")")")" random | sha256sum | cut -d' ' -f1)
expect_ok run --tls-verify=false --cache-from "docker://$P/ci/cache:main" ctx/a.toml -- /bin/busybox sha256sum /random
assert_eq "$random_a  /random" "$OUT" "run sees the random bytes A's RUN step wrote"
expect_ok cache stats --json
assert_eq 0 "$(jq .misses <<<"$OUT")" "no step ran for the shell or the run"
expect_exit 2 run --tls-verify=false --cache-from "docker://$P/ci/cache:main" rc:latest -- true
assert_contains "$(error_line)" "--cache-from docker://$P/ci/cache:main: only a recipe is built, not the image rc:latest" "an image target takes no --cache-from"

step "agent B2: a changed last step misses, and runs with A's cache mount restored"
agent B2
built "${opts[@]}" --cache-from "docker://$P/ci/cache:main" ctx/b.toml
B2=$DIGEST
assert_contains "$ERR" "cache mount /var/cache/pkg restored" "the mount came from the registry"
seen=$(tar_cat "$(blob "$FACTORY_CACHE" "$(jq -r '.layers[-1].digest' "$(blob "$FACTORY_CACHE" "$B2")")")" seen)
assert_eq "$warm_a" "$seen" "the missing step saw A's warm cache"
for l in $(jq -r '.layers[].digest' "$(blob "$FACTORY_CACHE" "$B2")"); do
    grep -q "var/cache/pkg/warm" <<<"$(tar_list "$(blob "$FACTORY_CACHE" "$l")")" && fail "the mount entered a layer"
done
true

step "agents A and D export different recipes to one ref; C gets hits for both"
agent D
built "${opts[@]}" --cache-to "docker://$P/ci/cache:main" ctx/other.toml
D=$DIGEST
agent C
expect_ok build "${opts[@]}" --cache-from "docker://$P/ci/cache:main" ctx/a.toml ctx/other.toml
assert_contains "$OUT" "$A" "C: a.toml's digest"
assert_contains "$OUT" "$D" "C: other.toml's digest"
expect_ok cache stats --json
assert_eq 0 "$(jq .misses <<<"$OUT")" "C ran nothing"

step "keep=1: the older entry of a step is dropped on export"
agent E
cp ctx/a.toml ctx/e.toml
expect_ok build "${opts[@]}" --cache-to "docker://$P/ci/keep:t,keep=1" ctx/e.toml
sleep 1.1 # a newer record (created, seconds)
cp ctx/b.toml ctx/e.toml
expect_ok build "${opts[@]}" --cache-to "docker://$P/ci/keep:t,keep=1" ctx/e.toml
cfg=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/ci/keep/manifests/t" | jq -r .config.digest)
entries=$(curl -s "http://$REGISTRY/v2/ci/keep/blobs/$cfg" | jq '.entries | length')
assert_eq 4 "$entries" "the edited last step's new entry replaced its old one; the others are shared"

step "mode=min: the output stage's steps only, no cache mounts"
agent E2
expect_ok build "${opts[@]}" --cache-to "docker://$P/ci/min:t,mode=min" ctx/a.toml
assert_contains "$ERR" "cache: exported 3 records, 0 mounts to $P/ci/min:t (3 in all)" "main's 3 keys, not side's"

step "a registry that is down, or answers 500: a local build, one warning"
agent F
dead=127.0.0.1:$(free_port)
expect_ok build "${opts[@]}" --cache-from "docker://$dead/ci/cache:main" ctx/other.toml
assert_eq 1 "$(grep -c '^factory: warning: --cache-from' "$TEST_DIR/last.stderr")" "one warning when down"
set_rules '[{"match": " /v2/ci/", "fault": "500", "times": -1}]'
agent G
expect_ok build "${opts[@]}" --cache-from "docker://$P/ci/cache:main" --cache-to "docker://$P/ci/cache:main" ctx/other.toml
assert_eq 1 "$(grep -c '^factory: warning: --cache-from' "$TEST_DIR/last.stderr")" "one warning on 500"
assert_eq 1 "$(grep -c '^factory: warning: --cache-to' "$TEST_DIR/last.stderr")" "--cache-to failing warns, exit 0"
set_rules '[]'

step "the registry stopped after the cache was read: the build goes on locally, one warning"
blob_rule=$(printf '[{"match": " GET /v2/ci/cache/blobs/%s", "fault": "reset", "times": -1}]' "$(jq -r '.layers[0].digest' "$(blob "$TEST_DIR/A/store" "$A")")")
set_rules "$blob_rule"
agent H
expect_ok build "${opts[@]}" --retries 1 --cache-from "docker://$P/ci/cache:main" ctx/a.toml
assert_eq 1 "$(grep -c '^factory: warning: --cache-from' "$TEST_DIR/last.stderr")" "one warning mid-build"
set_rules '[]'

# put_blob REPO FILE: uploads FILE; prints its digest.
put_blob() {
    local d loc
    d=sha256:$(sha256sum "$2" | cut -d' ' -f1)
    loc=$(curl -si -X POST "http://$REGISTRY/v2/$1/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [[ $loc == http* ]] || loc=http://$REGISTRY$loc
    curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc&digest=$d" >/dev/null ||
        curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc?digest=$d" >/dev/null
    echo "$d"
}
# put_manifest REPO TAG CONFIG_TYPE CONFIG_FILE LAYER_TYPE LAYER_FILE
put_manifest() {
    local c l
    c=$(put_blob "$1" "$4")
    l=$(put_blob "$1" "$6")
    jq -n --arg ct "$3" --arg c "$c" --argjson cs "$(stat -c %s "$4")" --arg lt "$5" --arg l "$l" \
        --argjson ls "$(stat -c %s "$6")" \
        '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {mediaType: $ct, digest: $c, size: $cs}, layers: [{mediaType: $lt, digest: $l, size: $ls}]}' \
        >"$TEST_DIR/m.json"
    curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$TEST_DIR/m.json" "http://$REGISTRY/v2/$1/manifests/$2" >/dev/null || fail "put manifest $1:$2"
}

step "hostile caches: rejected with one warning, nothing used"
good_cfg=$TEST_DIR/good.json
curl -s "http://$REGISTRY/v2/ci/cache/blobs/$cache_config" >"$good_cfg"
layer_file=$(blob "$TEST_DIR/A/store" "$(jq -r '.layers[0].digest' "$(blob "$TEST_DIR/A/store" "$A")")")
# A record pointing at a blob with another digest.
jq -c '.entries[0].blobs[0].digest = "sha256:'"$(printf x | sha256sum | cut -d' ' -f1)"'"' "$good_cfg" >"$TEST_DIR/bad1.json"
put_manifest ci/h1 t application/vnd.factory.cache.config.v1+json "$TEST_DIR/bad1.json" \
    application/vnd.oci.image.layer.v1.tar+gzip "$layer_file"
# A config over the cap.
head -c $((17 << 20)) /dev/zero >"$TEST_DIR/big.json"
put_manifest ci/h2 t application/vnd.factory.cache.config.v1+json "$TEST_DIR/big.json" \
    application/vnd.oci.image.layer.v1.tar+gzip "$layer_file"
# A layer of the wrong media type.
put_manifest ci/h3 t application/vnd.factory.cache.config.v1+json "$good_cfg" \
    application/x-not-a-layer "$layer_file"
# Not a factory cache at all.
put_manifest ci/h4 t application/vnd.oci.image.config.v1+json "$good_cfg" \
    application/vnd.oci.image.layer.v1.tar+gzip "$layer_file"
for h in h1:"is not the record's blob" h2:"over the cap" h3:"application/x-not-a-layer" h4:"not a factory cache"; do
    agent "hostile-${h%%:*}"
    expect_ok build "${opts[@]}" --cache-from "docker://$P/ci/${h%%:*}:t" ctx/other.toml
    assert_eq 1 "$(grep -c '^factory: warning: --cache-from' "$TEST_DIR/last.stderr")" "${h%%:*}: one warning"
    assert_contains "$(grep '^factory: warning: --cache-from' "$TEST_DIR/last.stderr")" "${h#*:}" "${h%%:*}: why"
    expect_ok cache stats --json
    assert_eq 0 "$(jq .remote_hits <<<"$OUT")" "${h%%:*}: nothing used"
done

step "factory cache export / import outside a build"
agent A
expect_ok cache export "${opts[@]}" "docker://$P/ci/nightly:warm"
assert_contains "$OUT" "cache mounts" "export report"
agent I
expect_ok cache import "${opts[@]}" "docker://$P/ci/nightly:warm"
assert_match "records and 1 cache mounts imported" "$OUT" "import report"
assert_eq "$A" "$(build "${opts[@]}" ctx/a.toml)" "an imported store builds A's digest with no registry"
expect_ok cache stats --json
assert_eq 0 "$(jq .misses <<<"$OUT")" "every step was imported"
expect_exit 1 cache import "${opts[@]}" "docker://$P/ci/nightly:no-such-tag"
assert_eq "factory: error: $P/ci/nightly:no-such-tag: the registry has no cache there (no manifest for the tag no-such-tag); a \`--cache-to\` export writes one" \
    "$(error_line)" "import of a tag that does not exist"

step "bad --cache-to/--cache-from values are usage errors"
expect_exit 2 build --cache-to "oci:x" ctx/a.toml
assert_contains "$(error_line)" "--cache-to oci:x: expected docker://HOST/REPO[:TAG][,mode=min|max][,keep=N]" "not docker://"
expect_exit 2 build --cache-to "docker://$P/ci/cache:main,mode=mid" ctx/a.toml
assert_contains "$(error_line)" "unknown option 'mode=mid'" "bad mode"
