# deps steps (docs/recipe.md "deps"): keyed by the lockfiles' content only — editing the source
# never re-runs the install, changing a lockfile does —, run in dest with persistent cache
# mounts, the lockfiles and what the command made in one layer, the same digest on two stores.
source "$(dirname "$0")/../lib.sh"
need_root

bb=$(busybox_context)
ctx=$TEST_DIR/ctx
mkdir -p "$ctx/src"
echo "left-pad 1.0" >"$ctx/deps.lock"
echo "main" >"$ctx/src/main.txt"
write "$ctx/recipe.toml" <<TOML
[image]
name = "deps"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
deps = { lockfile = ["deps.lock"], dest = "/app", run = ["/bin/busybox", "sh", "-c", "/bin/busybox cp deps.lock installed && echo ran >>/cache/runs"], cache = ["/cache"] }

[[step]]
copy = { src = "src", dest = "/app/src" }
TOML

rebuilt() {
    expect_ok build --progress plain "$@" "$ctx/recipe.toml"
    { grep -E '^\[main [0-9]+/3\] done ' "$TEST_DIR/last.stderr" || true; } |
        sed -E 's/^\[main ([0-9]+)\/3\].*/\1/' | tr '\n' ' ' | sed 's/ $//'
}
runs() { cat "$(find "$FACTORY_CACHE/mounts" -name runs | head -1)" | wc -l; }

step "first build runs the install in /app with the lockfile there"
assert_eq "1 2 3" "$(rebuilt)" "first build"
expect_ok build "$ctx/recipe.toml" -o "rootfs:$TEST_DIR/r1"
assert_eq "left-pad 1.0" "$(cat "$TEST_DIR/r1/app/installed")" "installed from the lockfile"
assert_eq "left-pad 1.0" "$(cat "$TEST_DIR/r1/app/deps.lock")" "lockfile in the layer"
assert_missing "$TEST_DIR/r1/cache/runs"
first=$(last_line)

step "a source change does not re-run the install"
echo "main 2" >"$ctx/src/main.txt"
assert_eq "3" "$(rebuilt)" "after a source change"
assert_eq "1" "$(runs)" "install runs"

step "a lockfile change does; the cache mount persists"
echo "left-pad 1.1" >"$ctx/deps.lock"
assert_eq "2 3" "$(rebuilt)" "after a lockfile change"
assert_eq "2" "$(runs)" "install runs"
expect_ok build "$ctx/recipe.toml" -o "rootfs:$TEST_DIR/r2"
assert_eq "left-pad 1.1" "$(cat "$TEST_DIR/r2/app/installed")" "installed from the new lockfile"

step "the same digest on a second store"
expect_ok build "$ctx/recipe.toml"
one=$(last_line)
FACTORY_CACHE=$TEST_DIR/store2 expect_ok build "$ctx/recipe.toml"
assert_eq "$one" "$(last_line)" "digest on two stores"
echo "PASS: $TEST_NAME"
