# recipes/node-app.toml: a deps step running `npm ci` against the npm registry on a Debian base
# with nodejs and npm. It succeeds with no secret and no CA copied in (the host's trust store
# is mounted for the step), is not re-run when only the app's source changes, is when the
# lockfile does, and the image has the same digest built on two stores.
source "$(dirname "$0")/../lib.sh"
need mmdebstrap jq
need_root

cp -a "$FACTORY_SOURCE_DIR/recipes/node-app.toml" "$FACTORY_SOURCE_DIR/recipes/node-app" "$TEST_DIR/"
cp -a "$TEST_DIR/node-app" "$TEST_DIR/pristine"
recipe=$TEST_DIR/node-app.toml

step "the deps step installs from the registry; the app runs"
first=$(build --cache "$TEST_DIR/store1" --progress plain "$recipe")
expect_ok run --cache "$TEST_DIR/store1" node-app:latest
assert_eq "node-app: one day is 86400000 ms" "$OUT" "the app's output"

step "a source change rebuilds the copy only"
echo 'console.log("changed");' >>"$TEST_DIR/node-app/index.js"
expect_ok build --cache "$TEST_DIR/store1" --progress plain "$recipe"
assert_eq "[main 2/2] done" "$(grep -Eo '^\[main [0-9]/2\] done' "$TEST_DIR/last.stderr" | tr '\n' ' ' | sed 's/ $//')" "steps rebuilt"

step "a lockfile change re-runs npm ci"
sed -i 's/"description": "A tiny app/"description": "A small app/' "$TEST_DIR/node-app/package.json"
expect_ok build --cache "$TEST_DIR/store1" --progress plain "$recipe"
assert_eq "[main 1/2] done [main 2/2] done" "$(grep -Eo '^\[main [0-9]/2\] done' "$TEST_DIR/last.stderr" | tr '\n' ' ' | sed 's/ $//')" "steps rebuilt"

step "the same digest on a second store"
cp "$TEST_DIR/pristine/package.json" "$TEST_DIR/pristine/index.js" "$TEST_DIR/node-app/"
mkdir -p "$TEST_DIR/store2"
cp -a "$TEST_DIR/store1/mounts" "$TEST_DIR/store2/mounts" # apt and npm download caches only
second=$(build --cache "$TEST_DIR/store2" --progress plain "$recipe")
assert_eq "$first" "$second" "node-app digest on two stores"
echo "PASS: $TEST_NAME"
