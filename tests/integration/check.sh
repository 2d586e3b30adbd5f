# `factory build --check`: every step rebuilt in a scratch store and compared with the stored
# one. Reproducible recipes pass (exit 0, "N steps reproduced") and leave the store's records as
# they were; a step made non-deterministic on purpose fails with exit 3, naming the step, its
# place in the recipe and the file, with a diffoscope line whose two blobs exist.
source "$(dirname "$0")/../lib.sh"
need_root

records() { find "$FACTORY_CACHE/actions" -type f | sort | xargs sha256sum; }

step "hello.toml reproduces; the check writes no record and leaves no scratch store"
hello=$(build "$FACTORY_SOURCE_DIR/recipes/hello.toml")
before=$(records)
expect_ok build --check "$FACTORY_SOURCE_DIR/recipes/hello.toml"
assert_eq "hello:latest $hello: 2 steps reproduced" "$(last_line)" "verdict"
assert_eq 2 "$(grep -c '^same ' "$TEST_DIR/last.stdout")" "one line per step"
assert_contains "$(head -n 1 "$TEST_DIR/last.stdout")" "hello.toml:23:1" "the step's place"
assert_eq "$before" "$(records)" "records after --check"
assert_eq "" "$(ls "$FACTORY_CACHE/tmp")" "scratch store removed"

bb=$(busybox_context)
ctx=$TEST_DIR/ctx
mkdir -p "$ctx"
echo data >"$ctx/data.txt"
base() {
    cat <<TOML
[image]
name = "$1"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "--install", "-s", "/bin"]
TOML
}

step "a busybox recipe with RUN steps reproduces, steps not cached yet built first"
{
    base multi
    cat <<'TOML'

[[step]]
copy = { src = "data.txt", dest = "/srv/data.txt" }

[[step]]
run = "mkdir -p /srv/out && cp /srv/data.txt /srv/out/copy && chmod 0600 /srv/out/copy && chown 12:34 /srv/out/copy && ln -s copy /srv/out/link && rm /srv/data.txt"
TOML
} | write "$ctx/multi.toml"
expect_ok build --check "$ctx/multi.toml"
verdict=$(last_line)
assert_eq 4 "$(grep -c '^same ' "$TEST_DIR/last.stdout")" "one line per step"
# Its busybox copy is hello.toml's (the same key): the store had it.
assert_eq "2/4 3/4 4/4" "$(grep '(built first)$' "$TEST_DIR/last.stdout" | awk '{print $3}' |
    tr '\n' ' ' | sed 's/ $//')" "steps built first"
multi=$(build "$ctx/multi.toml")
assert_match "\[main 4/4\] cached " "$(cat "$TEST_DIR/last.stderr")" "the check's first build recorded the steps"
assert_eq "multi:latest $multi: 4 steps reproduced" "$verdict" "verdict"
expect_ok build --check "$ctx/multi.toml"
assert_eq 0 "$(grep -c '(built first)' "$TEST_DIR/last.stdout")" "all cached the second time"

step "mtimes are the epoch in every layer, so a RUN touching a random time reproduces"
{
    base touched
    printf '\n[[step]]\nrun = "touch -d @$RANDOM /x"\n'
} | write "$ctx/touch.toml"
expect_ok build --check "$ctx/touch.toml"
assert_match ": 3 steps reproduced\$" "$(last_line)" "verdict"

# busybox's date has no %N (it prints "%N"): a random uuid is the nanoseconds' stand-in here;
# tests/interop/deps_managers.sh runs `date +%N` itself on a Debian image.
step "a RUN writing a random value differs: exit 3, the step, its line, the file"
{
    base stamped
    printf '\n[[step]]\nrun = "cat /proc/sys/kernel/random/uuid > /stamp"\n'
} | write "$ctx/stamp.toml"
line=$(($(grep -n 'random/uuid' "$ctx/stamp.toml" | cut -d: -f1) - 1)) # its [[step]]
before=$(build "$ctx/stamp.toml")
records_before=$(records)
expect_exit 3 build --check "$ctx/stamp.toml"
assert_contains "$OUT" "DIFFERS  main 3/3  $ctx/stamp.toml:$line:1  run cat /proc/sys/kernel/random/uuid > /stamp" \
    "the differing step"
assert_contains "$OUT" "    ~ /stamp  content (37→37 bytes)" "the file and what differs"
assert_eq 2 "$(grep -c '^same ' "$TEST_DIR/last.stdout")" "the steps before it"
assert_match "^stamped:latest $before: 2 of 3 steps reproduced\$" "$(last_line)" "verdict"
assert_eq "factory: error: $ctx/stamp.toml: step main 3/3 ($ctx/stamp.toml:$line:1) is not reproducible: /stamp differs" \
    "$(tail -n 1 "$TEST_DIR/last.stderr")" "error line"
read -r _ _ _ a b < <(grep '  the bytes: diffoscope ' "$TEST_DIR/last.stdout")
assert_exists "$a"
assert_exists "$b"
assert_ne "$a" "$b" "two blobs"
assert_eq "$records_before" "$(records)" "records after a failed --check"
assert_eq "" "$(ls "$FACTORY_CACHE/tmp")" "scratch store removed"
expect_ok cache verify

step "usage errors"
expect_exit 2 build --check --dry-run "$ctx/stamp.toml"
assert_contains "$(error_line)" "--check takes no --dry-run, -o, --push or --digest-file" "error"
expect_exit 2 build --check -o "oci:$TEST_DIR/out" "$ctx/stamp.toml"
