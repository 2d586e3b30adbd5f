# [image] epoch and SOURCE_DATE_EPOCH: every timestamp in the image (config created, history,
# every tar entry's mtime) is the epoch; SOURCE_DATE_EPOCH overrides the recipe.
source "$(dirname "$0")/../lib.sh"
need jq python3

make_tree ctx
write ctx/epoch.toml <<'EOF'
[image]
name = "epoch"
epoch = 1700000000

[[step]]
copy = [{ src = ".", dest = "/data/" }]
EOF
store=$TEST_DIR/store

# check_times REF EPOCH ISO
check_times() {
    local ref=$1 epoch=$2 iso=$3 config bad
    config=$(image_config "$store" "$ref")
    assert_eq "$iso" "$(jq -r .created <<<"$config")" "config created ($ref)"
    bad=$(jq -r --arg iso "$iso" '[.history[]? | select(.created != null and .created != $iso)] | length' <<<"$config")
    assert_eq 0 "$bad" "every history entry's created is the epoch ($ref)"
    bad=$(all_entries "$store" "$ref" | awk -v e="$epoch" '$5 != e && n++ < 3')
    assert_eq "" "$bad" "every tar entry's mtime is the epoch ($ref)"
}

step "[image] epoch"
d1=$(build ctx/epoch.toml)
check_times epoch:latest 1700000000 2023-11-14T22:13:20Z
assert_eq "$d1" "$(build ctx/epoch.toml)" "same epoch, same digest"

step "SOURCE_DATE_EPOCH overrides the recipe"
d2=$(SOURCE_DATE_EPOCH=1600000000 build ctx/epoch.toml)
check_times epoch:latest 1600000000 2020-09-13T12:26:40Z
assert_ne "$d1" "$d2" "another epoch, another digest"
assert_eq "$d2" "$(SOURCE_DATE_EPOCH=1600000000 build ctx/epoch.toml)" "same SOURCE_DATE_EPOCH, same digest"

step "SOURCE_DATE_EPOCH set but empty means unset (reproducible-builds.org): the recipe's epoch"
assert_eq "$d1" "$(SOURCE_DATE_EPOCH= build ctx/epoch.toml)" "SOURCE_DATE_EPOCH= builds with [image] epoch"
check_times epoch:latest 1700000000 2023-11-14T22:13:20Z

step "touching the sources changes nothing"
find ctx -exec touch -h -d '2011-11-11 11:11:11' {} +
assert_eq "$d1" "$(build ctx/epoch.toml)" "mtimes of the sources don't matter"

step "the default epoch is 0"
sed '/^epoch = /d' ctx/epoch.toml >ctx/epoch0.toml
d0=$(build ctx/epoch0.toml)
check_times epoch:latest 0 1970-01-01T00:00:00Z
: "$d0"

step "a bad SOURCE_DATE_EPOCH is a usage error"
SOURCE_DATE_EPOCH=yesterday expect_exit 2 build ctx/epoch.toml
assert_contains "$(error_line)" "SOURCE_DATE_EPOCH" "the variable is named"
SOURCE_DATE_EPOCH=-5 expect_exit 2 build ctx/epoch.toml
echo "PASS: $TEST_NAME"
