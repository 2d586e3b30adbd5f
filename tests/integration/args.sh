# [args] with ${NAME} expansion and --arg NAME=VALUE overrides.
source "$(dirname "$0")/../lib.sh"
need jq

mkdir -p ctx/v1 ctx/v2
echo one >ctx/v1/version.txt
echo two >ctx/v2/version.txt
write ctx/args.toml <<'EOF'
[image]
name = "args-${FLAVOR}"
tags = ["${VERSION}"]

[args]
VERSION = "1.0"
FLAVOR = "plain"
DIR = "v1"
NOTE = "none"

[[step]]
copy = [{ src = "${DIR}/version.txt", dest = "/etc/${FLAVOR}/version" }]

[config]
labels = { version = "${VERSION}", flavor = "${FLAVOR}", note = "${NOTE}" }
env = { APP_VERSION = "${VERSION}" }
EOF
store=$TEST_DIR/store

step "defaults"
d1=$(build ctx/args.toml)
assert_eq "args-plain:1.0 $d1" "$(last_line)" "name and tag from args"
config=$(image_config "$store" args-plain:1.0)
assert_eq 1.0 "$(jq -r .config.Labels.version <<<"$config")" "label from args"
assert_eq '["APP_VERSION=1.0"]' "$(jq -c .config.Env <<<"$config")" "env from args"
assert_contains "$(all_entries "$store" args-plain:1.0)" "etc/plain/version" "dest from args"

step "--arg overrides"
d2=$(build --arg VERSION=2.0 --arg FLAVOR=fancy --arg DIR=v2 ctx/args.toml)
assert_eq "args-fancy:2.0 $d2" "$(last_line)" "name and tag from --arg"
assert_ne "$d1" "$d2" "different args, different image"
config=$(image_config "$store" args-fancy:2.0)
assert_eq 2.0 "$(jq -r .config.Labels.version <<<"$config")" "label from --arg"
layer=$(image_layers "$store" args-fancy:2.0 | tail -n 1)
assert_eq two "$(tar_cat "$layer" etc/fancy/version)" "source path from --arg"
assert_eq "$d1" "$(build --arg VERSION=1.0 ctx/args.toml)" "--arg equal to the default"

step "a value with '=' in it"
d3=$(build --arg 'NOTE=a=b c' ctx/args.toml)
assert_eq "a=b c" "$(image_config "$store" args-plain:1.0 | jq -r .config.Labels.note)" \
    "--arg value kept whole after the first '='"
assert_ne "$d1" "$d3" "a label change changes the digest"

step "errors"
expect_exit 2 build --arg NOPE=1 ctx/args.toml
assert_contains "$(error_line)" "NOPE" "an unknown --arg is named"
expect_exit 2 build --arg VERSION ctx/args.toml
write ctx/undefined.toml <<'EOF'
[image]
name = "x"

[[step]]
copy = [{ src = "v1", dest = "/v/" }]

[config]
labels = { a = "${UNDEFINED}" }
EOF
expect_exit 2 build ctx/undefined.toml
assert_match '^factory: error: (.*/)?undefined\.toml:8:[0-9]+: .*UNDEFINED' "$(error_line)" \
    "undefined variable: location and name"
echo "PASS: $TEST_NAME"
