# Images on top of a base: an oci: layout factory wrote, an oci-archive, and a layout written by
# podman (a foreign producer). The base's layers are kept as they are (same digests), the new
# step adds one, the base's config is inherited, and the result runs.
source "$(dirname "$0")/../lib.sh"
need jq skopeo
podman_setup

hello=$FACTORY_SOURCE_DIR/recipes/hello.toml
store=$TEST_DIR/store

step "the base: hello, as an oci: layout and an oci-archive"
base_digest=$(build -o "oci:$TEST_DIR/base:v1" -o "oci-archive:$TEST_DIR/base.tar:v1" "$hello")
mapfile -t base_layers < <(layer_digests "$store" "$base_digest")
assert_eq 2 "${#base_layers[@]}" "hello has two layers"

mkdir -p ctx && printf '#!/bin/sh\necho "and more from the derived image"\n' >ctx/more.sh
chmod +x ctx/more.sh

# derived KIND BASE_REF: builds a recipe on BASE_REF, checks layers/config, runs it.
derived() {
    local kind=$1 base=$2 name="derived-$1" digest config out
    write "ctx/$name.toml" <<EOF
[image]
name = "$name"

[base]
image = "$base"

[[step]]
copy = [{ src = "more.sh", dest = "/bin/more" }]

[config]
cmd = ["/bin/sh", "-c", "/bin/hello && /bin/more"]
EOF
    digest=$(build -o "docker-archive:$TEST_DIR/$name.tar" "ctx/$name.toml")
    mapfile -t layers < <(layer_digests "$store" "$digest")
    assert_eq 3 "${#layers[@]}" "$kind: base layers + 1"
    if [[ $kind != podman ]]; then
        assert_eq "${base_layers[*]}" "${layers[*]:0:2}" "$kind: the base's layers are reused unchanged"
    fi
    config=$(image_config "$store" "$name:latest")
    assert_eq '["PATH=/bin"]' "$(jq -c .config.Env <<<"$config")" "$kind: Env inherited from the base"
    assert_eq hello "$(jq -r '.config.Labels["org.opencontainers.image.title"]' <<<"$config")" \
        "$kind: labels inherited"
    assert_eq 3 "$(jq '.rootfs.diff_ids | length' <<<"$config")" "$kind: three diff_ids"
    pm load -q -i "$TEST_DIR/$name.tar" >/dev/null
    out=$(pm run --rm --network none --pull never "$name:latest")
    assert_eq $'Hello from factory\nand more from the derived image' "$out" "$kind: runs"
    # The same recipe again: same digest (the base is pinned by content).
    assert_eq "$digest" "$(build "ctx/$name.toml")" "$kind: rebuild"
    echo "$digest"
}

step "base = oci:DIR:TAG written by factory"
d_oci=$(derived oci "oci:$TEST_DIR/base:v1")
step "base = oci-archive:FILE:TAG written by factory"
d_arc=$(derived archive "oci-archive:$TEST_DIR/base.tar:v1")
assert_eq "$d_oci" "$d_arc" "the same base through either transport gives the same image"

step "base = oci: layout written by podman"
build -o "docker-archive:$TEST_DIR/hello-docker.tar" "$hello" >/dev/null
pm load -q -i "$TEST_DIR/hello-docker.tar" >/dev/null
pm push -q hello:latest "oci:$TEST_DIR/podman-base:p1" >/dev/null ||
    fail "podman push to oci: failed"
skopeo inspect "oci:$TEST_DIR/podman-base:p1" >/dev/null
derived podman "oci:$TEST_DIR/podman-base:p1" >/dev/null

step "a base ref that doesn't exist"
write ctx/nobase.toml <<EOF
[image]
name = "nobase"

[base]
image = "oci:$TEST_DIR/base:nosuchtag"
EOF
run_factory build ctx/nobase.toml
[[ $RC -eq 1 || $RC -eq 2 ]] || fail "missing base tag: exit $RC"
assert_contains "$(error_line)" "nosuchtag" "the missing tag is named"
echo "PASS: $TEST_NAME"
