# A build killed at any moment (SIGKILL: no cleanup runs) leaves the store consistent: every blob
# matches its name, index.json is valid JSON naming only blobs that exist, and the next build
# succeeds with the same digest as a build in a fresh store.
source "$(dirname "$0")/../lib.sh"
need jq python3 sha256sum

mkdir -p ctx
# ~64 MiB that compresses poorly, so the build takes a while (the kill lands mid-layer).
head -c $((64 * 1024 * 1024)) /dev/urandom >ctx/big.bin
for i in $(seq 1 200); do echo "file $i" >"ctx/f$i.txt"; done
write ctx/big.toml <<'EOF'
[image]
name = "big"

[[step]]
copy = [{ src = "f*.txt", dest = "/small/" }]

[[step]]
copy = [{ src = "big.bin", dest = "/big.bin" }]
EOF

step "a clean build in a fresh store, for reference"
want=$(build --cache "$TEST_DIR/reference" ctx/big.toml)

# check_store DIR: blobs match names, index.json parses and names existing blobs.
check_store() {
    local dir=$1 d
    [[ -d $dir ]] || return 0
    for f in "$dir"/blobs/sha256/*; do
        [[ -f $f ]] || continue
        [[ $(basename "$f") == "$(sha256sum "$f" | cut -d' ' -f1)" ]] ||
            fail "blob $(basename "$f") does not match its content after a kill"
    done
    if [[ -f $dir/index.json ]]; then
        jq -e . "$dir/index.json" >/dev/null || fail "index.json is not valid JSON after a kill"
        for d in $(jq -r '.manifests[].digest' "$dir/index.json"); do
            assert_exists "$(blob "$dir" "$d")"
        done
    fi
}

step "kill -9 at several moments, then build again"
for delay in 0.05 0.2 0.5 1 2; do
    "$FACTORY" build --progress plain ctx/big.toml >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    check_store "$TEST_DIR/store"
done
got=$(build ctx/big.toml)
assert_eq "$want" "$got" "the build after the kills gives the reference digest"
check_store "$TEST_DIR/store"
verify_layout "$TEST_DIR/store"
echo "PASS: $TEST_NAME"
