# Exit codes and error texts (docs/cli.md): 2 for usage and recipe errors, with
# `file:line:col: ` first for recipe errors; 1 for build failures. A failed build publishes no
# ref and leaves no half-written output.
source "$(dirname "$0")/../lib.sh"
need jq sha256sum


# expect_recipe_error FILE LINE: exit 2, and the error names FILE:LINE:COL (path as given or
# absolute).
expect_recipe_error() {
    local file=$1 line=$2 err
    expect_exit 2 build "$file"
    err=$(error_line)
    assert_match "^factory: error: (.*/)?$(basename "$file" | sed 's/\./\\./g'):$line:[0-9]+: " \
        "$err" "recipe error location"
}

# No ref may be published by a failed build.
assert_no_ref() {
    if [[ -f $TEST_DIR/store/index.json ]]; then
        assert_eq "" "$(layout_digest "$TEST_DIR/store" "$1")" "no ref $1 after a failed build"
    fi
}

step "usage errors"
expect_exit 2 build
expect_exit 2 frobnicate
expect_exit 2 build --progress sideways "$FACTORY_SOURCE_DIR/recipes/hello.toml"
expect_exit 2 build -o "nonsense:$TEST_DIR/x" "$FACTORY_SOURCE_DIR/recipes/hello.toml"
assert_contains "$(error_line)" "nonsense:" "the bad destination is named"
expect_exit 2 build --arg NOEQUALS "$FACTORY_SOURCE_DIR/recipes/hello.toml"
expect_exit 2 build "$TEST_DIR/does-not-exist.toml"
assert_contains "$(error_line)" "does-not-exist.toml" "the missing recipe is named"
run_factory --help
assert_eq 0 "$RC" "--help exits 0"
assert_contains "$OUT" "build" "--help lists build"

# expect_usage LINE ARGS...: exit 2, and stderr is LINE alone: the error is the last line
# factory writes (docs/cli.md "Conventions").
expect_usage() {
    local line=$1
    shift
    expect_exit 2 "$@"
    assert_eq "$line" "$ERR" "stderr of: factory $*"
}

hello=$FACTORY_SOURCE_DIR/recipes/hello.toml

step "a command line factory can't read: which command, which argument, in one line"
expect_usage "factory: error: build: missing RECIPE; see 'factory build --help'" build
expect_usage "factory: error: inspect: missing REF; see 'factory inspect --help'" inspect
expect_usage "factory: error: build: unknown option '--nope'; see 'factory build --help'" \
    build --nope "$hello"
expect_usage "factory: error: unknown option '--nope'; see 'factory --help'" --nope build "$hello"
expect_usage "factory: error: inspect: unexpected argument 'b'; see 'factory inspect --help'" \
    inspect a b
expect_usage "factory: error: why: --step needs a value; see 'factory why --help'" \
    why "$hello" --step
expect_usage "factory: error: push: --jobs many: expected an integer; see 'factory push --help'" \
    push --jobs many a:b 127.0.0.1:5999/x:y
expect_exit 2 frobnicate
assert_match "^factory: error: unknown command 'frobnicate' \(build, plan, export, why, cache, .*\); see 'factory --help'\$" \
    "$ERR" "an unknown command, and the commands"
expect_exit 2
assert_match "^factory: error: no command given \(build, .*\); see 'factory --help'\$" "$ERR" \
    "no command"
expect_usage "factory: error: cache: unknown command 'bogus' (stats, ls, prune, verify, export, import); see 'factory cache --help'" \
    cache bogus
expect_usage "factory: error: cache: no command given (stats, ls, prune, verify, export, import); see 'factory cache --help'" \
    cache

step "why --step counts steps from 1"
expect_usage "factory: error: --step 0: steps count from 1" why --step 0 "$hello"
expect_usage "factory: error: --step -1: steps count from 1" why --step -1 "$hello"
expect_usage "factory: error: --step 9: the recipe has 2 steps" why --step 9 "$hello"

step "--json goes with --dry-run"
expect_usage "factory: error: --json goes with --dry-run (the plan as JSON); a build prints no JSON" \
    build --json "$hello"

step "--jobs of the registry commands is at least 1"
expect_usage "factory: error: --jobs 0: blobs transferred at once, at least 1" \
    push --jobs 0 hello:latest 127.0.0.1:5999/x:y
expect_usage "factory: error: --jobs -1: blobs transferred at once, at least 1" \
    pull --jobs -1 127.0.0.1:5999/x:y

step "reading a registry cache takes no mode= or keep="
expect_usage "factory: error: --cache-from docker://127.0.0.1:5999/r:t,mode=max: 'mode=max' is an option for writing a cache (--cache-to, cache export); reading one takes none" \
    build --cache-from docker://127.0.0.1:5999/r:t,mode=max "$hello"
expect_usage "factory: error: cache import docker://127.0.0.1:5999/r:t,mode=min: 'mode=min' is an option for writing a cache (--cache-to, cache export); reading one takes none" \
    cache import docker://127.0.0.1:5999/r:t,mode=min
expect_usage "factory: error: --cache-from oci:dir: expected docker://HOST/REPO[:TAG]" \
    build --cache-from oci:dir "$hello"

step "a bad SOURCE_DATE_EPOCH: the recipe first, as for every recipe error"
SOURCE_DATE_EPOCH=abc expect_usage \
    "factory: error: $hello: SOURCE_DATE_EPOCH=abc: expected a non-negative integer (seconds since 1970)" \
    build "$hello"
SOURCE_DATE_EPOCH=-5 expect_usage \
    "factory: error: $hello: SOURCE_DATE_EPOCH=-5: expected a non-negative integer (seconds since 1970)" \
    why "$hello"

step "an image REF: every command reads it the same way; one not in the store is exit 2"
store=$TEST_DIR/store
old=$(SOURCE_DATE_EPOCH=1 build "$hello")
new=$(build "$hello") # hello:latest moves on; the first build stays in the store, untagged
assert_ne "$old" "$new" "another epoch, another image"
any="(give NAME[:TAG], sha256:DIGEST, a recipe.toml, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG])"
expect_usage "factory: error: no image 'nosuch' in the store $store" inspect nosuch
expect_usage "factory: error: no image 'nosuch' in the store $store $any" inspect --files nosuch
expect_usage "factory: error: no image 'nosuch' in the store $store $any" diff nosuch hello:latest
expect_usage "factory: error: no image 'nosuch' in the store $store" export nosuch "oci:$TEST_DIR/x"
expect_usage "factory: error: no image 'nope:latest' in the store $store" \
    push nope:latest 127.0.0.1:5999/x:y
for ref in "$old" "${old:0:19}" "${old:7:12}"; do
    expect_ok inspect "$ref"
    assert_contains "$OUT" "Digest:       $old" "inspect $ref: the untagged image"
    expect_ok inspect --files "$ref"
    assert_contains "$OUT" "/bin/hello" "inspect --files $ref"
    expect_ok diff "$ref" hello:latest
    assert_contains "$OUT" "A: $old" "diff $ref: the untagged image"
    expect_ok export "$ref" "oci:$TEST_DIR/untagged"
    assert_eq "oci:$TEST_DIR/untagged $old" "$OUT" "export $ref"
done
expect_ok diff "${new:7:12}" hello:latest
assert_contains "$OUT" "A: $new" "a prefix of a tagged image"

step "malformed TOML: file:line:col"
write bad-syntax.toml <<'EOF'
[image]
name = "x"
tags = ["a", "b"
EOF
expect_recipe_error bad-syntax.toml 3
write bad-syntax2.toml <<'EOF'
[image]
name = "x"

[config]
env = { A = "1" B = "2" }
EOF
expect_recipe_error bad-syntax2.toml 5

step "unknown key with a suggestion"
write unknown-key.toml <<'EOF'
[image]
nmae = "x"
EOF
expect_exit 2 build unknown-key.toml
assert_match '^factory: error: (.*/)?unknown-key\.toml:2:1: .*nmae' "$(error_line)" "unknown key"
assert_match "did you mean .?name.?" "$(error_line)" "suggestion for nmae"
write unknown-step-key.toml <<EOF
[image]
name = "x"

[[step]]
copy = [{ src = "a", dest = "/a", mdoe = "0755" }]
EOF
expect_exit 2 build unknown-step-key.toml
assert_match '^factory: error: (.*/)?unknown-step-key\.toml:5:[0-9]+: .*mdoe' "$(error_line)" \
    "unknown key in a copy item"
assert_match "did you mean .?mode.?" "$(error_line)" "suggestion for mdoe"
write unknown-table.toml <<'EOF'
[image]
name = "x"

[confg]
cmd = ["/bin/sh"]
EOF
expect_exit 2 build unknown-table.toml
assert_match '^factory: error: (.*/)?unknown-table\.toml:4:[0-9]+: .*confg' "$(error_line)" \
    "unknown table"
assert_match "did you mean .?config.?" "$(error_line)" "suggestion for confg"

step "invalid values"
write bad-type.toml <<'EOF'
[image]
name = "x"
epoch = "yesterday"
EOF
expect_recipe_error bad-type.toml 3
write bad-mode.toml <<'EOF'
[image]
name = "x"

[[step]]
copy = [{ src = "a", dest = "/a", mode = "0999" }]
EOF
echo a >a
expect_recipe_error bad-mode.toml 5
write relative-dest.toml <<'EOF'
[image]
name = "x"

[[step]]
copy = [{ src = "a", dest = "relative/a" }]
EOF
expect_recipe_error relative-dest.toml 5
write bad-compression.toml <<'EOF'
[image]
name = "x"
compression = "lzma"
EOF
expect_recipe_error bad-compression.toml 3
write bad-stage.toml <<'EOF'
[image]
name = "x"

[[step]]
copy = [{ from = "nosuchstage", src = "/a", dest = "/a" }]
EOF
expect_recipe_error bad-stage.toml 5
assert_contains "$(error_line)" "nosuchstage" "the unknown stage is named"

step "missing source"
mkdir -p ctx && echo hi >ctx/present.txt
write ctx/missing.toml <<'EOF'
[image]
name = "missing"

[[step]]
copy = [{ src = "present.txt", dest = "/present.txt" }, { src = "absent.txt", dest = "/absent.txt" }]
EOF
expect_recipe_error ctx/missing.toml 5
assert_contains "$(error_line)" "absent.txt" "the missing source is named"
assert_no_ref missing:latest
write ctx/missing-glob.toml <<'EOF'
[image]
name = "missing"

[[step]]
copy = [{ src = "*.nothing", dest = "/x/" }]
EOF
expect_recipe_error ctx/missing-glob.toml 5
assert_contains "$(error_line)" "*.nothing" "a glob matching nothing is named"

step "../ escapes the context"
echo secret >outside.txt
write ctx/escape.toml <<'EOF'
[image]
name = "escape"

[[step]]
copy = [{ src = "../outside.txt", dest = "/outside.txt" }]
EOF
expect_recipe_error ctx/escape.toml 5
assert_contains "$(error_line)" "../outside.txt" "the escaping source is named"
assert_no_ref escape:latest
write ctx/escape-abs.toml <<EOF
[image]
name = "escape"

[[step]]
copy = [{ src = "$TEST_DIR/outside.txt", dest = "/outside.txt" }]
EOF
expect_recipe_error ctx/escape-abs.toml 5
write ctx/escape-context.toml <<'EOF'
[image]
name = "escape"
context = ".."

[[step]]
copy = [{ src = "ctx/present.txt", dest = "/p" }]
EOF
# A context outside the recipe's directory is allowed only through [contexts]; the recipe's own
# context may be above it (like docker build -f). Either way it must build or fail cleanly.
run_factory build ctx/escape-context.toml
[[ $RC -eq 0 || $RC -eq 2 ]] || fail "context = \"..\": exit $RC"

step "a symlink in the context pointing outside"
mkdir -p symctx
echo secret >secret.txt
ln -s "$TEST_DIR" symctx/up-abs          # absolute, to a directory outside
ln -s ../secret.txt symctx/secret-rel    # relative, to a file outside
write symctx/through-abs.toml <<'EOF'
[image]
name = "sym"

[[step]]
copy = [{ src = "up-abs/secret.txt", dest = "/secret.txt" }]
EOF
expect_exit 2 build symctx/through-abs.toml
assert_contains "$(error_line)" "up-abs" "the symlink is named"
assert_no_ref sym:latest
write symctx/follow-rel.toml <<'EOF'
[image]
name = "sym"

[[step]]
copy = [{ src = "secret-rel", dest = "/secret.txt" }]
EOF
# Copying the symlink itself is fine (it is stored as a symlink, not followed); what must never
# happen is the outside file's content in a layer.
run_factory build symctx/follow-rel.toml
if [[ $RC -eq 0 ]]; then
    entries=$(all_entries "$TEST_DIR/store" sym:latest)
    assert_match '(^|'$'\n'')l [0-7]+ 0:0 0 0 secret.txt -> \.\./secret\.txt' "$entries" \
        "an outside symlink is copied as a symlink"
else
    assert_eq 2 "$RC" "exit code for a symlink source pointing outside"
fi
write symctx/dir.toml <<'EOF'
[image]
name = "symdir"

[[step]]
copy = [{ src = ".", dest = "/ctx/" }]
EOF
d=$(build symctx/dir.toml)
entries=$(all_entries "$TEST_DIR/store" symdir:latest)
assert_match '(^|'$'\n'')l [0-7]+ 0:0 0 0 ctx/up-abs -> '"$TEST_DIR"'('$'\n''|$)' "$entries" \
    "symlinks inside a copied directory stay symlinks"
assert_not_contains "$entries" "ctx/up-abs/" "a symlinked directory is not followed"
assert_match '(^|'$'\n'')l [0-7]+ 0:0 0 0 ctx/secret-rel -> \.\./secret\.txt('$'\n''|$)' "$entries" \
    "a relative symlink leaving the context is stored as a symlink"
assert_eq "symdir:latest $d" "$(last_line)" "last line"

step "an unwritable destination: exit 1, nothing half-written"
touch a-file
hello=$FACTORY_SOURCE_DIR/recipes/hello.toml
expect_exit 1 build -o "oci:$TEST_DIR/a-file/layout" "$hello"
assert_contains "$(error_line)" "$TEST_DIR/a-file/layout" "the destination is named"
assert_eq "" "$(cat a-file)" "the file in the way is untouched"
mkdir existing-dir
before=$(ls -A "$TEST_DIR")
expect_exit 1 build -o "oci-archive:$TEST_DIR/existing-dir" "$hello"
assert_eq "$before" "$(ls -A "$TEST_DIR")" "no temp file left beside the destination"
assert_eq "" "$(ls -A existing-dir)" "the directory in the way is untouched"
expect_exit 1 build -o "docker-archive:$TEST_DIR/existing-dir" "$hello"
assert_eq "$before" "$(ls -A "$TEST_DIR")" "no temp file left beside the destination"
if privileged; then
    mkdir ro && mount -t tmpfs -o ro,size=1m tmpfs ro
    expect_exit 1 build -o "oci-archive:$TEST_DIR/ro/out.tar" "$hello"
    assert_eq "" "$(ls -A ro)" "read-only destination stays empty"
    umount ro
fi

step "a base oci: layout with a blob that doesn't match its name"
build -o "oci:$TEST_DIR/base:latest" "$hello" >/dev/null
base_digest=$(layout_digest "$TEST_DIR/base" latest)
layer=$(image_layers "$TEST_DIR/base" latest | tail -n 1)
layer_name=$(basename "$layer")
# Same size, one byte changed: only a digest check can see it.
python3 - "$layer" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xFF
open(p, "wb").write(b)
EOF
rm -rf "$TEST_DIR/store" # the store must not already have the good blob
write on-bad-base.toml <<EOF
[image]
name = "onbad"

[base]
image = "oci:$TEST_DIR/base:latest"

[[step]]
copy = [{ src = "a", dest = "/a" }]
EOF
expect_exit 1 build on-bad-base.toml
assert_match "$layer_name|digest|mismatch|corrupt" "$(error_line)" "the corrupt blob is reported"
assert_no_ref onbad:latest
if [[ -d $TEST_DIR/store/blobs ]]; then
    verify_layout "$TEST_DIR/store" # nothing corrupt was copied into the store
fi
: "$base_digest"

echo "PASS: $TEST_NAME"
