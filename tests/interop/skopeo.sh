# skopeo reads what factory writes — the oci: layout, the oci-archive, the docker-archive and
# the store itself — and copies between them (and through a local docker-registry) with the
# manifest digest preserved; gzip and zstd.
source "$(dirname "$0")/../lib.sh"
need skopeo jq sha256sum

hello=$FACTORY_SOURCE_DIR/recipes/hello.toml
store=$TEST_DIR/store

# sk_digest REF: the manifest digest skopeo computes for REF.
sk_digest() { skopeo inspect --format '{{.Digest}}' "$1"; }
# sk_raw_digest REF: sha256 of the raw manifest bytes skopeo reads.
sk_raw_digest() { echo "sha256:$(skopeo inspect --raw "$1" | sha256sum | cut -d' ' -f1)"; }

check_image() { # check_image DIGEST CONFIG_DIGEST REF WHAT
    assert_eq "$1" "$(sk_digest "$3")" "skopeo's digest of $4"
    assert_eq "$1" "$(sk_raw_digest "$3")" "sha256 of the raw manifest of $4"
    assert_eq "$2" "sha256:$(skopeo inspect --config --raw "$3" | sha256sum | cut -d' ' -f1)" \
        "sha256 of the raw config of $4"
}

for compression in gzip zstd; do
    step "$compression: build"
    if [[ $compression == zstd ]]; then
        sed -e 's/^\[image\]$/[image]\ncompression = "zstd"/' \
            -e 's|^context = "hello"|context = "'"$FACTORY_SOURCE_DIR"'/recipes/hello"|' \
            -e 's/^name = "hello"/name = "hello-zstd"/' "$hello" >"$TEST_DIR/hello-zstd.toml"
        recipe=$TEST_DIR/hello-zstd.toml
        name="hello-zstd"
        media=application/vnd.oci.image.layer.v1.tar+zstd
    else
        recipe=$hello
        name=hello
        media=application/vnd.oci.image.layer.v1.tar+gzip
    fi
    out=$TEST_DIR/$compression
    mkdir -p "$out"
    digest=$(build -o "oci:$out/layout:v1" -o "oci-archive:$out/image.tar:v1" \
        -o "docker-archive:$out/docker.tar" "$recipe")
    config=$(config_digest "$store" "$digest")

    step "$compression: skopeo inspect of the layout, the archive and the store"
    check_image "$digest" "$config" "oci:$out/layout:v1" "the oci: layout"
    check_image "$digest" "$config" "oci-archive:$out/image.tar:v1" "the oci-archive"
    check_image "$digest" "$config" "oci:$store:$name:latest" "the store"
    layers=$(skopeo inspect --raw "oci:$out/layout:v1" | jq -r '.layers[].mediaType' | sort -u)
    assert_eq "$media" "$layers" "layer media type"
    assert_eq "$(dpkg --print-architecture)" \
        "$(skopeo inspect --format '{{.Architecture}}' "oci:$out/layout:v1")" "architecture"

    step "$compression: skopeo copy between them keeps the digest"
    skopeo copy -q --preserve-digests "oci:$store:$name:latest" "oci:$out/copy1:c" >/dev/null
    assert_eq "$digest" "$(layout_digest "$out/copy1" c)" "store → oci:"
    skopeo copy -q --preserve-digests "oci-archive:$out/image.tar:v1" "oci:$out/copy2:c" >/dev/null
    assert_eq "$digest" "$(layout_digest "$out/copy2" c)" "oci-archive → oci:"
    skopeo copy -q --preserve-digests "oci:$out/layout:v1" "oci-archive:$out/copy3.tar:c" >/dev/null
    assert_eq "$digest" "$(sk_digest "oci-archive:$out/copy3.tar:c")" "oci: → oci-archive"
    # skopeo writes into factory's store (a foreign writer); factory still reads it.
    skopeo copy -q --preserve-digests "oci:$out/layout:v1" "oci:$store:copied-$name:v9" >/dev/null
    verify_layout "$store"
    expect_ok images
    assert_contains "$OUT" "copied-$name:v9" "factory lists a ref skopeo added to the store"
    assert_contains "$OUT" "$name:latest" "and still its own"
    # The dir: transport re-verifies every blob's digest while copying.
    skopeo copy -q "oci:$out/layout:v1" "dir:$out/dir" >/dev/null

    step "$compression: docker-archive"
    docker_config=$(skopeo inspect --config --raw "docker-archive:$out/docker.tar")
    oci_config=$(skopeo inspect --config --raw "oci:$out/layout:v1")
    assert_eq "$(jq -c .rootfs.diff_ids <<<"$oci_config")" "$(jq -c .rootfs.diff_ids <<<"$docker_config")" \
        "docker-archive has the same diff_ids"
    assert_eq '["/bin/hello"]' "$(jq -c .config.Cmd <<<"$docker_config")" "docker-archive Cmd"
done

step "push to and pull from a local docker-registry with the digest preserved"
start_registry
digest=$(layout_digest "$store" hello:latest)
skopeo copy -q --preserve-digests --dest-tls-verify=false \
    "oci:$store:hello:latest" "docker://$REGISTRY/test/hello:latest" >/dev/null
assert_eq "$digest" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/test/hello:latest")" \
    "registry digest"
skopeo copy -q --preserve-digests --src-tls-verify=false \
    "docker://$REGISTRY/test/hello:latest" "oci:$TEST_DIR/pulled:p" >/dev/null
assert_eq "$digest" "$(layout_digest "$TEST_DIR/pulled" p)" "pulled back"
digest=$(layout_digest "$store" hello-zstd:latest)
skopeo copy -q --preserve-digests --dest-tls-verify=false \
    "oci:$store:hello-zstd:latest" "docker://$REGISTRY/test/hello-zstd:latest" >/dev/null
assert_eq "$digest" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/test/hello-zstd:latest")" \
    "registry digest (zstd)"
echo "PASS: $TEST_NAME"
