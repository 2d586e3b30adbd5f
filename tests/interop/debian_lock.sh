# factory lock on a Debian base (mmdebstrap through the host's mirror, minutes): the lock records
# the mirror, the suite and every installed package with its version, read from the base's
# layer after `factory lock` built it; written again it is byte-identical and builds nothing;
# `build --locked` gives the same digest; a bootstrap under --locked whose packages differ from
# the pins fails naming each package, before a layer is written.
source "$(dirname "$0")/../lib.sh"
need_root
need mmdebstrap

ctx=$TEST_DIR/ctx
write "$ctx/deb.toml" <<'TOML'
[image]
name = "deb-lock"

[base]
debian = { suite = "bookworm" }
TOML
r=$ctx/deb.toml
export FACTORY_CACHE=$TEST_DIR/store

step "factory lock builds the base and pins its packages"
expect_ok lock --progress plain "$r"
assert_contains "$ERR" "main.base: building the recipe to learn its packages"
lock=$(cat "$r.lock")
assert_contains "$lock" "[main.base]
kind = \"debian\""
assert_contains "$lock" 'suite = "bookworm"'
assert_contains "$lock" "[main.base.packages]"
dpkg_version=$(sed -n 's/^dpkg = "\(.*\)"$/\1/p' "$r.lock")
assert_match '^[0-9][^ ]*$' "$dpkg_version" "dpkg's pinned version"
[[ $(grep -c ' = "' "$r.lock") -gt 80 ]] || fail "fewer packages than a minbase has: $(grep -c ' = "' "$r.lock")"

step "written again: byte-identical, nothing built"
cp "$r.lock" "$TEST_DIR/lock.1"
expect_ok lock --progress plain "$r"
cmp "$TEST_DIR/lock.1" "$r.lock" || fail "the lock changed"
assert_not_contains "$ERR" "building the recipe" "a second lock built again"

step "--locked builds the same image"
digest=$(build "$r")
assert_eq "$digest" "$(build --locked "$r")" "locked digest"

step "a bootstrap whose packages differ from the pins fails naming each one"
sed -i 's/^dpkg = ".*"$/dpkg = "0.0-pinned"/' "$r.lock"
rm -rf "$FACTORY_CACHE/actions" # the base is bootstrapped again
expect_exit 1 build --locked "$r"
assert_contains "$ERR" "the debian base drifted from the lock file (factory lock --update main.base moves it):
  main.base: debian package dpkg: 0.0-pinned → $dpkg_version"
echo "PASS: $TEST_NAME"
