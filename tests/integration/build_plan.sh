# The plan of a build (docs/cli.md "factory build"): --dry-run in words and in JSON, what is
# checked before anything runs (a missing --secret), refs that move only once every -o output
# is written, and what `cache ls` says each record was made from.
source "$(dirname "$0")/../lib.sh"
need jq

mkdir -p ctx
printf 'a\n' >ctx/a.txt
printf 'b\n' >ctx/b.txt
write ctx/two.toml <<'EOF'
[image]
name = "two"

[stage.side.base]
image = "scratch"

[[stage.side.step]]
copy = [{ src = "b.txt", dest = "/b.txt" }]

[[step]]
copy = [{ src = "a.txt", dest = "/a.txt" }]

[[step]]
copy = [{ from = "side", src = "/b.txt", dest = "/b.txt" }]
EOF

step "--dry-run: the plan, nothing built"
expect_ok build --dry-run ctx/two.toml
assert_match $'stage side\n  copy   side 1/1 +[0-9a-f]{12} build   copy b.txt -> /b.txt' "$OUT" \
    "the side stage first, its step keyed"
assert_contains "$OUT" "stage main (after side)" "main needs side"
assert_match '  copy   main 2/2 +[0-9a-f]{12} build   copy side:b.txt -> /b.txt' "$OUT" \
    "a copy from a stage of copies not built yet is keyed (its files are the context's)"
assert_missing "$TEST_DIR/store" # no record, no layer: not even a store
expect_ok plan ctx/two.toml
assert_missing "$TEST_DIR/store" # as why and images: where there is none, plan makes none
expect_ok build --dry-run --json ctx/two.toml
assert_eq '["side"]' "$(jq -c '.[0].stages[1].needs' <<<"$OUT")" "needs in JSON"
assert_eq 'copy' "$(jq -r '.[0].stages[1].steps[0].kind' <<<"$OUT")" "kind in JSON"
assert_match '^[0-9a-f]{64}$' "$(jq -r '.[0].stages[1].steps[0].key' <<<"$OUT")" "key in JSON"
assert_eq 'false' "$(jq -r '.[0].stages[1].steps[1].cached' <<<"$OUT")" "cached in JSON"
assert_eq '["side"]' "$(jq -c '.[0].stages[1].steps[1].inputs' <<<"$OUT")" "inputs in JSON"
assert_eq 'parent' "$(jq -r '.[0].stages[1].steps[1].fields[1][0]' <<<"$OUT")" "fields in JSON"

step "after a build, the dry run says cached with the keys the build used"
digest=$(build ctx/two.toml)
expect_ok build --dry-run --json ctx/two.toml
assert_eq 'true true true' "$(jq -r '[.[0].stages[].steps[].cached] | map(tostring) | join(" ")' <<<"$OUT")" \
    "every step cached"
key=$(jq -r '.[0].stages[1].steps[0].key' <<<"$OUT")
assert_exists "$TEST_DIR/store/actions/${key:0:2}/$key.json"
assert_eq "$digest" "$(build ctx/two.toml)" "a dry run changes nothing"

step "factory plan prints what build --dry-run prints"
expect_ok build --dry-run ctx/two.toml
dry=$OUT
expect_ok plan ctx/two.toml
assert_eq "$dry" "$OUT" "plan = build --dry-run"
assert_contains "$OUT" "cached  copy side:b.txt -> /b.txt" "plan sees the store"
expect_ok plan --json ctx/two.toml
assert_eq 'true' "$(jq -r '.[0].stages[1].steps[1].cached' <<<"$OUT")" "plan --json"
run_factory plan ctx/missing.toml
assert_eq 2 "$RC" "plan of a missing recipe"$'\n'"$ERR"

step "a failed -o moves no ref: a fresh store"
touch plainfile
export FACTORY_CACHE=$TEST_DIR/fresh
run_factory build -o oci:plainfile ctx/two.toml
assert_eq 1 "$RC" "exit code of a failed -o"$'\n'"$ERR"
assert_eq "" "$OUT" "nothing on stdout"
expect_ok images
assert_not_contains "$OUT" "two:latest" "no ref added"
step "a failed -o moves no ref: the ref exists at another digest"
export FACTORY_CACHE=$TEST_DIR/store
printf 'a2\n' >ctx/a.txt
run_factory build -o oci:plainfile ctx/two.toml
assert_eq 1 "$RC" "exit code of a failed -o"
expect_ok images --json
assert_eq "$digest" "$(jq -r 'select(.name == "two:latest") | .digest' <<<"$OUT")" "the ref did not move"
d2=$(build ctx/two.toml)
assert_ne "$digest" "$d2" "without -o the new image is tagged"

if ! privileged || ! command -v runc >/dev/null 2>&1; then
    step "skipped: RUN steps need root with CAP_SYS_ADMIN and runc"
    echo "PASS: $TEST_NAME"
    exit 0
fi
bb=$(busybox_context)
write ctx/secret.toml <<EOF
[image]
name = "secret"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "echo", "made by run"]

[[step]]
run = ["/bin/busybox", "true"]
secret = [{ id = "token", env = "TOKEN" }]
EOF
step "a missing --secret is found when planning, before any step runs"
run_factory build --progress plain ctx/secret.toml
assert_eq 2 "$RC" "exit code"
assert_match "^factory: error: .*secret\.toml:15:[0-9]+: the step uses secret 'token', but no --secret id=token" \
    "$(error_line)" "the error names the secret and where"
assert_not_contains "$ERR" "main 1/3" "no step ran"
expect_ok build --dry-run ctx/secret.toml --secret id=token,env=HOME
assert_match '  run    main 3/3 +[0-9a-f]{12} build ' "$OUT" "a RUN step after a RUN miss is keyed"
expect_ok build --progress plain ctx/secret.toml --secret id=token,env=HOME

step "cache ls: the WHAT of run records"
expect_ok cache ls
assert_match '(^|'$'\n'')[0-9a-f]{12} +run +[^'$'\n'']* run /bin/busybox echo made by run' "$OUT" \
    "a run record says its command"
assert_match '(^|'$'\n'')[0-9a-f]{12} +copy +[^'$'\n'']* src=busybox;dest=/bin/busybox' "$OUT" \
    "a copy record says its items"
assert_match '(^|'$'\n'')[0-9a-f]{12} +copy-layer +' "$OUT" "copy layers have their own records"
# Every row's SIZE starts under the header's, copy-layer rows included.
assert_eq "" "$(awk 'NR == 1 {p = index($0, "SIZE")} NR > 1 && (substr($0, p - 1, 1) != " " || substr($0, p, 1) == " ") {print}' <<<"$OUT")" \
    "cache ls: the columns line up"
echo "PASS: $TEST_NAME"
