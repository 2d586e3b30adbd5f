# recipes/ci-agent.toml: Debian bookworm minbase (mmdebstrap through the host's Debian mirror)
# plus apt-get install of gcc, make and git under a real OCI runtime. Built twice, each time from
# an empty store, it gives the same manifest digest, and `build --check` reproduces each step
# (the Debian bootstrap too); podman runs the installed tools; umoci
# unpacks the image to exactly the tree factory's own applier produces.
source "$(dirname "$0")/../lib.sh"
need mmdebstrap umoci jq crun runc podman
need_root

recipe=$FACTORY_SOURCE_DIR/recipes/ci-agent.toml

step "two builds, each from an empty store, give one digest"
first=$(build --cache "$TEST_DIR/store1" --progress plain "$recipe")
# The second store starts with no blobs, records or snapshots, only the apt download cache (a
# cache mount, never part of a layer or a key), so the suite doesn't fetch the packages twice.
mkdir -p "$TEST_DIR/store2"
cp -a "$TEST_DIR/store1/mounts" "$TEST_DIR/store2/mounts"
second=$(build --cache "$TEST_DIR/store2" --progress plain "$recipe")
if [[ $first != "$second" ]]; then
    # Say which layer differs, to make a failure actionable.
    m1=$(blob "$TEST_DIR/store1" "$first")
    m2=$(blob "$TEST_DIR/store2" "$second")
    diff <(jq -r '.layers[].digest' "$m1") <(jq -r '.layers[].digest' "$m2") >&2 || true
    fail "ci-agent is not reproducible: $first vs $second"
fi

step "the tools run in podman, as the image's user"
expect_ok export --cache "$TEST_DIR/store1" ci-agent:bookworm "docker-archive:$TEST_DIR/ci.tar" \
    "oci:$TEST_DIR/layout:bookworm" "rootfs:$TEST_DIR/flat"
podman_setup
pm load -q -i "$TEST_DIR/ci.tar" >/dev/null
out=$(pm run --rm --network none docker.io/library/ci-agent:bookworm \
    sh -c 'gcc --version | head -n1; make --version | head -n1; git --version; id -un; pwd')
assert_match 'gcc \(Debian 12' "$(sed -n 1p <<<"$out")" "gcc runs"
assert_match '^GNU Make 4' "$(sed -n 2p <<<"$out")" "make runs"
assert_match '^git version 2' "$(sed -n 3p <<<"$out")" "git runs"
assert_eq "ci" "$(sed -n 4p <<<"$out")" "the image's user"
assert_eq "/home/ci" "$(sed -n 5p <<<"$out")" "the image's workdir"
rc=0
pm run --rm --network none docker.io/library/ci-agent:bookworm sh -c \
    'printf "int main(void){return 7;}" > /tmp/t.c && gcc -o /tmp/t /tmp/t.c && /tmp/t' || rc=$?
assert_eq 7 "$rc" "a program compiled in the image runs"

step "umoci unpacks the same tree as factory's applier"
umoci unpack --image "$TEST_DIR/layout:bookworm" "$TEST_DIR/bundle" >/dev/null
tree_of() {
    (cd "$1" && find . -mindepth 1 \( -type f -printf '%p f %m %U:%G %s\n' \) -o \
        \( -type d -printf '%p d %m %U:%G\n' \) -o \( -type l -printf '%p l %l\n' \) -o \
        -printf '%p %y %m %U:%G\n' | LC_ALL=C sort)
}
diff <(tree_of "$TEST_DIR/bundle/rootfs") <(tree_of "$TEST_DIR/flat") >"$TEST_DIR/tree.diff" ||
    fail "umoci and factory unpack differently:"$'\n'"$(head -n 20 "$TEST_DIR/tree.diff")"

step "build --check rebuilds the base (mmdebstrap) and both RUN steps: all reproduce"
expect_ok build --cache "$TEST_DIR/store1" --progress plain --check "$recipe"
assert_eq "ci-agent:bookworm $first: 3 steps reproduced" "$(last_line)" "verdict"
assert_eq 3 "$(grep -c '^same ' "$TEST_DIR/last.stdout")" "base and two RUN steps"
assert_eq "" "$(ls "$TEST_DIR/store1/tmp")" "scratch store removed"
