# Several builds sharing one store at once: all succeed, all print the same digest, the store
# stays consistent (every blob matches its name, every ref is there).
source "$(dirname "$0")/../lib.sh"
need jq sha256sum

mkdir -p ctx
head -c $((16 * 1024 * 1024)) /dev/urandom >ctx/data.bin
for i in $(seq 1 300); do echo "file $i" >"ctx/f$i.txt"; done
write ctx/shared.toml <<'EOF'
[image]
name = "shared"

[[step]]
copy = [{ src = "f*.txt", dest = "/small/" }]

[[step]]
copy = [{ src = "data.bin", dest = "/data.bin" }]
EOF
hello=$FACTORY_SOURCE_DIR/recipes/hello.toml

step "4 builds of one recipe and 2 of another, at once, into one store"
pids=()
for i in 1 2 3 4; do
    "$FACTORY" build --progress plain ctx/shared.toml >"out.$i" 2>"err.$i" &
    pids+=($!)
done
for i in 5 6; do
    "$FACTORY" build --progress plain "$hello" >"out.$i" 2>"err.$i" &
    pids+=($!)
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || fail "concurrent build $((i + 1)) failed: $(tail -n 5 "err.$((i + 1))")"
done
shared=$(tail -n 1 out.1)
assert_match "^shared:latest $DIGEST_RE\$" "$shared" "result line"
for i in 2 3 4; do
    assert_eq "$shared" "$(tail -n 1 "out.$i")" "build $i gives the same result"
done
assert_eq "$(tail -n 1 out.5)" "$(tail -n 1 out.6)" "both hello builds agree"
verify_layout "$TEST_DIR/store"
assert_eq "${shared##* }" "$(layout_digest "$TEST_DIR/store" shared:latest)" "ref shared:latest"
assert_eq "$(tail -n 1 out.5 | cut -d' ' -f2)" "$(layout_digest "$TEST_DIR/store" hello:latest)" \
    "ref hello:latest (refs of concurrent builds are not lost)"
assert_eq 1 "$(jq '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "shared:latest")] | length' "$TEST_DIR/store/index.json")" \
    "one entry per ref in index.json"

step "a fresh store gives the same digest"
assert_eq "${shared##* }" "$(build --cache "$TEST_DIR/fresh" ctx/shared.toml)" "fresh store"
echo "PASS: $TEST_NAME"
