# factory lock on a Debian base (mmdebstrap through the host's mirror, minutes): the lock records
# the mirror, the suite, the mirror's Release date (the Date of its InRelease, as curl reads
# it) and every installed package with its version, read from the base's layer and record
# after `factory lock` built it; written again it is byte-identical and builds nothing;
# `build --locked` gives the same digest; a bootstrap under --locked whose packages differ from
# the pins fails naming each package, before a layer is written; one whose mirror's Release
# date is not the pinned one fails before bootstrapping, naming both dates.
source "$(dirname "$0")/../lib.sh"
need_root
need mmdebstrap curl

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
mirror=$(sed -n 's/^mirror = "\(.*\)"$/\1/p' "$r.lock")
mirror_date=$(curl -fsS "${mirror%/}/dists/bookworm/InRelease" | sed -n 's/^Date: //p' | head -n 1)
[[ -n $mirror_date ]] || fail "no Date in $mirror's InRelease"
release_date=$(date -u -d "$mirror_date" +%Y-%m-%dT%H:%M:%SZ)
assert_contains "$lock" "release-date = \"$release_date\""
[[ $(grep -c ' = "' "$r.lock") -gt 80 ]] || fail "fewer packages than a minbase has: $(grep -c ' = "' "$r.lock")"

step "written again: byte-identical, nothing built"
cp "$r.lock" "$TEST_DIR/lock.1"
expect_ok lock --progress plain "$r"
cmp "$TEST_DIR/lock.1" "$r.lock" || fail "the lock changed"
assert_not_contains "$ERR" "building the recipe" "a second lock built again"

step "--locked builds the same image"
digest=$(build "$r")
assert_eq "$digest" "$(build --locked "$r")" "locked digest"

step "a mirror whose Release date is not the pinned one fails before bootstrapping"
cp "$r.lock" "$TEST_DIR/lock.good"
sed -i 's/^release-date = ".*"$/release-date = "2020-01-02T03:04:05Z"/' "$r.lock"
rm -rf "$FACTORY_CACHE/actions" # the base is bootstrapped again
started=$SECONDS
expect_exit 1 build --locked "$r"
(( SECONDS - started < 60 )) || fail "the drifted date was found only after $((SECONDS - started)) s: after a bootstrap?"
assert_contains "$ERR" "main.base: debian bookworm: the Release date of $mirror moved 2020-01-02T03:04:05Z → $release_date; build from a snapshot mirror that keeps 2020-01-02T03:04:05Z (mirror = \"http://snapshot.debian.org/archive/debian/20200102T030405Z\" or the first snapshot after it), or move the pin (factory lock --update main.base $r)"
cp "$TEST_DIR/lock.good" "$r.lock"

step "a bootstrap whose packages differ from the pins fails naming each one"
sed -i 's/^dpkg = ".*"$/dpkg = "0.0-pinned"/' "$r.lock"
rm -rf "$FACTORY_CACHE/actions" # the base is bootstrapped again
expect_exit 1 build --locked "$r"
assert_contains "$ERR" "the debian base drifted from the lock file (factory lock --update main.base moves it):
  main.base: debian package dpkg: 0.0-pinned → $dpkg_version"
echo "PASS: $TEST_NAME"
