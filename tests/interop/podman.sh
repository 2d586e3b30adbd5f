# podman (rootful, private storage, runc, --network none) loads and runs factory's images:
# docker-archive and oci-archive, gzip and zstd; the hello image prints its greeting; a zstd
# layer of many frames (one per block) reads back whole.
# shellcheck disable=SC2016 # single-quoted text runs in the container
source "$(dirname "$0")/../lib.sh"
need jq zstd sha256sum
podman_setup

hello=$FACTORY_SOURCE_DIR/recipes/hello.toml

step "docker-archive: podman load + run"
build -o "docker-archive:$TEST_DIR/hello-docker.tar" -o "oci-archive:$TEST_DIR/hello-oci.tar:latest" \
    "$hello" >/dev/null
pm load -q -i "$TEST_DIR/hello-docker.tar" >/dev/null || fail "podman load of the docker-archive failed"
out=$(pm_run --rm --network none --pull never hello:latest) || fail "podman run failed"
assert_eq "Hello from factory" "$out" "podman run of the docker-archive image"
out=$(pm_run --rm --network none --pull never hello:latest /bin/sh -c 'echo $((6*7)); ls -l /bin/sh')
assert_contains "$out" "42" "/bin/sh works"
assert_contains "$out" "/bin/sh -> busybox" "/bin/sh is a symlink to busybox"
assert_eq '["/bin/hello"]' "$(pm image inspect hello:latest | jq -c '.[0].Config.Cmd')" "Cmd"
assert_eq "hello" "$(pm image inspect hello:latest | jq -r '.[0].Labels["org.opencontainers.image.title"]')" \
    "labels"

step "docker-archive with an explicit name"
build -o "docker-archive:$TEST_DIR/named.tar:example.com/me/greeter:v2" "$hello" >/dev/null
pm load -q -i "$TEST_DIR/named.tar" >/dev/null
assert_eq "Hello from factory" "$(pm_run --rm --network none --pull never example.com/me/greeter:v2)" \
    "docker-archive:FILE:NAME:TAG"

step "oci-archive: podman load + run"
pm rmi -a -f >/dev/null
pm load -q -i "$TEST_DIR/hello-oci.tar" >/dev/null || fail "podman load of the oci-archive failed"
img=$(pm images --format '{{.ID}}' | sed -n 1p)
[[ -n $img ]] || fail "no image after loading the oci-archive"
assert_eq "Hello from factory" "$(pm_run --rm --network none --pull never "$img")" "oci-archive image"

step "zstd: podman load + run"
sed -e 's/^\[image\]$/[image]\ncompression = "zstd"/' \
    -e 's|^context = "hello"|context = "'"$FACTORY_SOURCE_DIR"'/recipes/hello"|' \
    -e 's/^name = "hello"/name = "hello-zstd"/' "$hello" >"$TEST_DIR/hello-zstd.toml"
grep -q '^compression = "zstd"' "$TEST_DIR/hello-zstd.toml" || fail "could not write the zstd recipe"
build -o "oci-archive:$TEST_DIR/zstd.tar:latest" -o "docker-archive:$TEST_DIR/zstd-docker.tar" \
    "$TEST_DIR/hello-zstd.toml" >/dev/null
pm rmi -a -f >/dev/null
pm load -q -i "$TEST_DIR/zstd.tar" >/dev/null || fail "podman load of the zstd oci-archive failed"
img=$(pm images --format '{{.ID}}' | sed -n 1p)
assert_eq "Hello from factory" "$(pm_run --rm --network none --pull never "$img")" "zstd image runs"
pm load -q -i "$TEST_DIR/zstd-docker.tar" >/dev/null || fail "podman load of the zstd docker-archive failed"
assert_eq "Hello from factory" "$(pm_run --rm --network none --pull never hello-zstd:latest)" \
    "zstd docker-archive runs"

step "zstd: a layer of many frames reads back whole"
# ~4 MB of text: a layer of several blocks, each its own zstd frame (RFC 8878 §3.1).
mkdir -p ctx/frames
head -c 3000000 /dev/urandom | base64 >ctx/frames/big.txt
write ctx/frames.toml <<EOF
[image]
name = "frames"
compression = "zstd"

[contexts]
busybox = "$(busybox_context)"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]

[[step]]
copy = [{ src = "frames", dest = "/data/" }]
EOF
build -o "oci-archive:$TEST_DIR/frames.tar:latest" ctx/frames.toml >/dev/null
big_layer=$(image_layers "$TEST_DIR/store" frames:latest | tail -n 1)
frames=$(zstd -lv "$big_layer" 2>/dev/null | sed -n 's/^# Zstandard Frames: //p')
((frames >= 4)) || fail "the big zstd layer has ${frames:-no} frames, expected one per block"
pm rmi -a -f >/dev/null
pm load -q -i "$TEST_DIR/frames.tar" >/dev/null || fail "podman load of the many-frame image failed"
img=$(pm images --format '{{.ID}}' | sed -n 1p)
assert_eq "$(sha256sum <ctx/frames/big.txt | cut -d' ' -f1)" \
    "$(pm_run --rm --network none --pull never "$img" /bin/busybox sha256sum /data/big.txt | cut -d' ' -f1)" \
    "the file of a many-frame layer reads back whole in the container"

step "the image's config reaches the container: env, workdir, user"
mkdir -p ctx && printf '#!/bin/sh\necho "$GREETING from $(pwd) as $(id -u):$(id -g)"\n' >ctx/show.sh
chmod +x ctx/show.sh
write ctx/config.toml <<EOF
[image]
name = "cfg"

[contexts]
busybox = "$(busybox_context)"

[[step]]
copy = [
  { context = "busybox", src = "busybox", dest = "/bin/busybox" },
  { src = "show.sh", dest = "/bin/show" },
]

[[step]]
copy = [{ src = "show.sh", dest = "/work/.keep", uid = 1234, gid = 1234 }]

[config]
env = { GREETING = "hi", PATH = "/bin" }
entrypoint = ["/bin/busybox", "sh"]
cmd = ["/bin/show"]
workdir = "/work"
user = "1234:1234"
EOF
build -o "docker-archive:$TEST_DIR/cfg.tar" ctx/config.toml >/dev/null
pm load -q -i "$TEST_DIR/cfg.tar" >/dev/null
assert_eq "hi from /work as 1234:1234" "$(pm_run --rm --network none --pull never cfg:latest)" \
    "env, workdir, user, entrypoint + cmd"
echo "PASS: $TEST_NAME"
