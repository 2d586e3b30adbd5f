# The step cache: which steps rebuild when each kind of input changes (and that `factory why`
# names the change), kill -9 at random moments leaves a store that verifies clean, concurrent
# builds agree and build each step once, a flipped byte is caught, a full disk is a clear error.
source "$(dirname "$0")/../lib.sh"
need jq python3

ctx=$TEST_DIR/ctx
mkdir -p "$ctx/a" "$ctx/c"
echo one >"$ctx/a/one.txt"
echo bee >"$ctx/b.txt"
echo sea >"$ctx/c/sea.txt"
write "$ctx/recipe.toml" <<'TOML'
[image]
name = "steps"

[args]
DEST = "/c"

[[step]]
copy = [{ src = "a", dest = "/a" }]

[[step]]
copy = [{ src = "b.txt", dest = "/b.txt" }]

[[step]]
copy = [{ src = "c", dest = "${DEST}" }]
TOML

# rebuilt ARGS...: builds and prints the steps that were not cached, e.g. "2 3".
rebuilt() {
    expect_ok build --progress plain "$@" "$ctx/recipe.toml"
    grep -E '^\[main [0-9]+/3\] done ' "$TEST_DIR/last.stderr" | sed -E 's/^\[main ([0-9]+)\/3\].*/\1/' |
        tr '\n' ' ' | sed 's/ $//'
}

step "why on a path with no store writes nothing there"
expect_ok why --cache "$TEST_DIR/no-store" "$ctx/recipe.toml"
assert_eq "step main 1/3 (copy a -> /a): never built before (no record of this step in the store)" \
    "$(sed -n 1p "$TEST_DIR/last.stdout")" "why without a store"
assert_missing "$TEST_DIR/no-store"

step "first build builds every step; a no-op rebuild builds none and gives the same digest"
assert_eq "1 2 3" "$(rebuilt)" "first build"
first=$(last_line)
assert_eq "" "$(rebuilt)" "no-op rebuild"
assert_eq "$first" "$(last_line)" "no-op digest"

step "touching a file (same content) rebuilds nothing"
touch -d '2001-02-03' "$ctx/b.txt" "$ctx/a/one.txt"
assert_eq "" "$(rebuilt)" "after touch"

step "same size, same mtime, other content: the stat cache must not be fooled"
mtime=$(stat -c %Y "$ctx/b.txt")
echo BEE >"$ctx/b.txt"
touch -d "@$mtime" "$ctx/b.txt"
expect_ok why "$ctx/recipe.toml"
assert_eq "step main 1/3 (copy a -> /a): cached" "$(sed -n 1p "$TEST_DIR/last.stdout")" "why step 1"
assert_match '^step main 2/3 \(copy b.txt -> /b.txt\): b.txt → /b.txt changed \(sha256 [0-9a-f]{12}… → [0-9a-f]{12}…\)$' \
    "$(sed -n 2p "$TEST_DIR/last.stdout")" "why names the changed file"
assert_eq "step main 3/3 (copy c -> /c): the step before it changed" \
    "$(sed -n 3p "$TEST_DIR/last.stdout")" "why step 3"
assert_eq "2 3" "$(rebuilt)" "after rewriting b.txt"

step "an exec bit on a source file rebuilds its step only (and what follows)"
chmod +x "$ctx/c/sea.txt"
expect_ok why "$ctx/recipe.toml"
assert_contains "$OUT" "/c/sea.txt changed owner/mode (0:0:0644 → 0:0:0755)" "why names the mode"
assert_eq "3" "$(rebuilt)" "after chmod"

step "a new file in a copied directory"
echo new >"$ctx/c/new.txt"
expect_ok why "$ctx/recipe.toml"
assert_contains "$OUT" "step main 3/3 (copy c -> /c): c/new.txt → /c/new.txt added" "why names the new file"
assert_eq "3" "$(rebuilt)" "after adding a file"
with_new_file=$(last_line)

step "--arg that changes a destination"
expect_ok why --arg DEST=/srv "$ctx/recipe.toml"
assert_contains "$OUT" "step main 3/3 (copy c -> /srv): copy changed ('src=c;dest=/c;' → 'src=c;dest=/srv;')" \
    "why names the definition change"
assert_eq "3" "$(rebuilt --arg DEST=/srv)" "after --arg"

step "SOURCE_DATE_EPOCH changes every step"
export SOURCE_DATE_EPOCH=1700000000
expect_ok why "$ctx/recipe.toml"
assert_contains "$OUT" "step main 1/3 (copy a -> /a): epoch changed ('0' → '1700000000')" "why names the epoch"
assert_eq "1 2 3" "$(rebuilt)" "after changing the epoch"
unset SOURCE_DATE_EPOCH
assert_eq "" "$(rebuilt)" "back to epoch 0: every step is still in the cache"
assert_eq "$with_new_file" "$(last_line)" "and the digest is the one built before"

step "kill -9 at random moments: the store verifies clean and the next build gives the digest"
big=$TEST_DIR/big
mkdir -p "$big/tree"
python3 - "$big/tree" <<'PY'
import os, random, sys
# Text-like data: it compresses (deflate works on it), so a build takes long enough that the
# kills below land in the middle of real work.
root = sys.argv[1]
rng = random.Random(7)
words = [("w%d" % i).encode() for i in range(5000)]
def text(n):
    return b" ".join(rng.choices(words, k=n // 5 + 1))[:n]
for d in range(20):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
    for f in range(50):
        with open(f"{root}/d{d}/f{f}", "wb") as fh:
            fh.write(text(rng.randint(1000, 40000)))
with open(f"{root}/large", "wb") as fh:
    fh.write(text(16 << 20))
PY
write "$big/recipe.toml" <<'TOML'
[image]
name = "big"
[[step]]
copy = [{ src = "tree/**/f*", dest = "/t/" }] # /t/d0/f0 … (the path below tree/ kept)
[[step]]
copy = [{ src = "tree/large", dest = "/large" }]
TOML
killstore=$TEST_DIR/killstore
expect_ok build --cache "$TEST_DIR/refstore" "$big/recipe.toml"
want=$(last_line)
kills=0
for i in $(seq 1 30); do
    # A fresh epoch each round makes every step a miss, so the kill lands in real work.
    SOURCE_DATE_EPOCH=$((1000 + i)) "$FACTORY" build --cache "$killstore" --progress plain \
        "$big/recipe.toml" >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 350)))"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null || true
    run_factory cache verify --cache "$killstore"
    [[ $RC -eq 0 ]] || fail "round $i: cache verify after kill -9 is not clean"$'\n'"$OUT"
done
[[ $kills -ge 20 ]] || fail "only $kills of 30 builds were killed mid-way (the build is too fast?)"
expect_ok build --cache "$killstore" "$big/recipe.toml"
assert_eq "$want" "$(last_line)" "digest after the kill loop"

step "6 concurrent builds on one store agree and build each step once"
constore=$TEST_DIR/constore
pids=()
for i in 1 2 3 4 5 6; do
    "$FACTORY" build --cache "$constore" --progress plain "$big/recipe.toml" \
        >"$TEST_DIR/con$i.out" 2>"$TEST_DIR/con$i.err" &
    pids+=($!)
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || fail "concurrent build $((i + 1)) failed: $(cat "$TEST_DIR/con$((i + 1)).err")"
done
for i in 1 2 3 4 5 6; do
    assert_eq "$want" "$(tail -n 1 "$TEST_DIR/con$i.out")" "digest of concurrent build $i"
done
expect_ok cache stats --cache "$constore" --json
assert_eq 2 "$(jq .misses <<<"$OUT")" "steps built (misses) across 6 builds"
assert_eq 10 "$(jq .hits <<<"$OUT")" "steps reused (hits) across 6 builds"
# The size's parts add up to it, and nothing of the store is left out of them.
mkdir -p "$constore/snapshots/fake" "$constore/mounts/m" "$constore/git/g.git" "$constore/homes/h"
head -c 1000 /dev/zero >"$constore/snapshots/fake/f"
head -c 2000 /dev/zero >"$constore/mounts/m/f"
head -c 3000 /dev/zero >"$constore/git/g.git/f"
head -c 4000 /dev/zero >"$constore/homes/h/f"
expect_ok cache stats --cache "$constore" --json
assert_eq "1000 2000 3000 4000" "$(jq -r '.store | "\(.snapshot_bytes) \(.mount_bytes) \(.git_bytes) \(.shell_bytes)"' <<<"$OUT")" \
    "snapshots, mounts, git mirrors and shells are counted"
assert_eq "$(jq '.store.total_bytes' <<<"$OUT")" "$(jq '[.store | to_entries[] | select(.key | endswith("_bytes")) | select(.key != "total_bytes") | .value] | add' <<<"$OUT")" \
    "the parts add up to the total"
measured=$(du -sb --apparent-size "$constore" | cut -f1)
(($(jq '.store.total_bytes' <<<"$OUT") <= measured)) || fail "total $(jq .store.total_bytes <<<"$OUT") > du $measured"
expect_ok cache stats --cache "$constore" --zero
for part in "snapshots (unpacked layers)" "cache mounts" "git mirrors" "shell homes, volumes, environments" "step records" "blobs"; do
    assert_contains "$OUT" "$part" "cache stats lists $part"
done
assert_match $'\n''total +10 +2 ' "$OUT" "--zero prints the counters first"
expect_ok cache stats --cache "$constore" --json
assert_eq "0 0" "$(jq -r '"\(.hits) \(.misses)"' <<<"$OUT")" "--zero reset the counters"
rm -rf "$constore/snapshots/fake" "$constore/mounts/m" "$constore/git" "$constore/homes"

step "a flipped byte in a blob is reported, quarantined, and rebuilt"
layer=$(jq -r '.layers[1].digest' "$(blob "$constore" "${want##* }")")
path=$(blob "$constore" "$layer")
python3 - "$path" <<'PY'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
data[len(data) // 2] ^= 0x01
open(p, "wb").write(bytes(data))
PY
expect_exit 1 build --cache "$constore" -o "oci-archive:$TEST_DIR/out.tar" "$big/recipe.toml"
assert_contains "$(error_line)" "blob $layer in the store is corrupt" "an export never ships a corrupt blob"
assert_missing "$TEST_DIR/out.tar"
expect_exit 1 cache verify --cache "$constore"
assert_contains "$OUT" "${layer#sha256:}" "verify names the corrupt blob"
# The ref still needs the blob: repair can only quarantine it and drop the record that named it.
expect_exit 1 cache verify --cache "$constore" --repair
assert_contains "$OUT" "repaired: moved blobs/sha256/${layer#sha256:} to quarantine/" "quarantined"
assert_contains "$OUT" "needed by a ref, is corrupt: rebuild or pull that image again" "what to do"
expect_ok build --cache "$constore" --progress plain "$big/recipe.toml"
assert_eq "$want" "$(last_line)" "the rebuilt image has the same digest"
expect_ok cache verify --cache "$constore"

step "a ref whose manifest is missing: named, the other refs still checked, no --repair advice"
refs=$TEST_DIR/refs-store
for n in one two; do
    mkdir -p "$TEST_DIR/refs-$n"
    echo "$n" >"$TEST_DIR/refs-$n/f"
    printf '[image]\nname = "refs-%s"\n[[step]]\ncopy = [{ src = "f", dest = "/f" }]\n' "$n" >"$TEST_DIR/refs-$n/recipe.toml"
    expect_ok build --cache "$refs" "$TEST_DIR/refs-$n/recipe.toml"
done
gone=$(jq -r '.manifests[] | select(.annotations."org.opencontainers.image.ref.name" == "refs-one:latest") | .digest' "$refs/index.json")
rm -f "$(blob "$refs" "$gone")"
# A pull killed by SIGINT leaves a temp whose writer is gone.
mkdir -p "$refs/tmp"
head -c 2000 /dev/zero >"$refs/tmp/.tmp-blob-999999999-0-0badf00d"
expect_exit 1 cache verify --cache "$refs"
assert_eq "problem: blob $gone, needed by a ref, is missing: rebuild or pull that image again" \
    "$(grep '^problem:' <<<"$OUT")" "the missing manifest, in the documented wording"
assert_eq "stale temps: 1 (2.0 kB), left by killed writers: --repair removes them" \
    "$(grep '^stale temps:' <<<"$OUT")" "stale temps are counted"
# refs-one's manifest, refs-two's manifest, config and layer (one layer each).
assert_match "^checked [0-9]+ blobs, [0-9]+ step records, [0-9]+ block maps, [0-9]+ listings, 4 refs' blobs: NOT clean$" \
    "$(last_line)" "the other ref's blobs are checked; --repair is not advised"
expect_exit 1 cache verify --cache "$refs" --repair
assert_contains "$OUT" "repaired: removed stale temp tmp/.tmp-blob-999999999-0-0badf00d (its writer (pid 999999999) is gone)" "--repair removes the temp"
assert_match "refs' blobs: NOT clean$" "$(last_line)" "repair can't fix a missing manifest"
expect_ok build --cache "$refs" "$TEST_DIR/refs-one/recipe.toml"
expect_ok cache verify --cache "$refs"
assert_match "refs' blobs: clean$" "$(last_line)" "a rebuild fixes it"

step "build --lock-timeout gives up on a store held by a prune; --max-size prunes after the build"
need flock
flock -x "$constore/locks/store.lock" sleep 20 &
holder=$!
_lib_on_exit "kill $holder 2>/dev/null"
sleep 0.3
expect_exit 1 build --cache "$constore" --lock-timeout 1s "$big/recipe.toml"
assert_eq "factory: error: the store $constore is being pruned or repaired: gave up after 1 s waiting for $constore/locks/store.lock" \
    "$(error_line)" "--lock-timeout"
kill "$holder"
wait "$holder" 2>/dev/null || true
expect_exit 2 build --cache "$constore" --lock-timeout soon "$big/recipe.toml"
expect_exit 2 build --cache "$constore" --max-size lots "$big/recipe.toml"
expect_exit 2 cache prune --cache "$constore" --older-than 7x
assert_eq "factory: error: --older-than 7x: invalid duration \"7x\": unknown unit 'x' (like 7d, 12h, 30m, 1d12h; units s, m, h, d, w)" \
    "$(error_line)" "prune names the option"
expect_exit 2 cache prune --cache "$constore" --max-size lots
assert_contains "$(error_line)" "factory: error: --max-size lots: invalid size \"lots\"" "prune names the option"
# With --max-size far below the store's size, the step records (and the blobs only they
# name) go once the build is done; the image stays.
expect_ok build --cache "$constore" --progress plain --max-size 1K "$big/recipe.toml"
assert_contains "$ERR" "freed" "--max-size prunes after the build"
expect_ok cache ls --cache "$constore"
assert_eq 1 "$(wc -l <"$TEST_DIR/last.stdout")" "no step record is left (the store is over 1K)"
expect_ok cache verify --cache "$constore"
expect_ok inspect --cache "$constore" "${want##* }"

step "a full disk: a clear error, and a store that verifies clean"
if privileged; then
    small=$TEST_DIR/small
    mkdir -p "$small"
    mount -t tmpfs -o size=3m tmpfs "$small"
    _lib_on_exit "umount -l '$small' 2>/dev/null"
    expect_exit 1 build --cache "$small/store" "$big/recipe.toml"
    assert_contains "$(error_line)" "No space left on device" "ENOSPC is named"
    expect_ok cache verify --cache "$small/store"
else
    echo "(not root: the tmpfs part is skipped)" >&2
fi
