# Multi-stage recipes: [stage.NAME] tables; `copy = [{ from = "STAGE", … }]` takes files from
# another stage's rootfs; only the output stage's layers end up in the image.
source "$(dirname "$0")/../lib.sh"
need jq python3

mkdir -p ctx/src
printf 'built artifact\n' >ctx/src/artifact.bin
printf 'only in the builder\n' >ctx/src/builder-only.txt
printf '#!/bin/sh\necho run\n' >ctx/src/run.sh && chmod 0755 ctx/src/run.sh

write ctx/multi.toml <<'EOF'
[image]
name = "multi"

[stage.builder.base]
image = "scratch"

[[stage.builder.step]]
copy = [{ src = "src/", dest = "/out/" }]

[[stage.builder.step]]
copy = [{ src = "src/builder-only.txt", dest = "/scratchpad/builder-only.txt" }]

[base]
image = "scratch"

[[step]]
copy = [
  { from = "builder", src = "/out/artifact.bin", dest = "/app/artifact.bin" },
  { from = "builder", src = "/out/run.sh", dest = "/app/bin/run", uid = 1000, gid = 1000 },
]

[config]
cmd = ["/app/bin/run"]
EOF

step "build: the final image has only its own layer"
digest=$(build ctx/multi.toml)
assert_eq "multi:latest $digest" "$(last_line)" "last line"
store=$TEST_DIR/store
assert_eq 1 "$(image_layers "$store" multi:latest | wc -l)" "one layer in the final image"
entries=$(all_entries "$store" multi:latest)
echo "$entries" >entries
assert_match '(^|'$'\n'')f 0644 0:0 15 0 app/artifact\.bin('$'\n''|$)' "$entries" "artifact copied"
assert_match '(^|'$'\n'')f 0755 1000:1000 [0-9]+ 0 app/bin/run('$'\n''|$)' "$entries" \
    "uid/gid override on a copy from a stage"
assert_not_contains "$entries" "builder-only" "builder files stay in the builder"
assert_not_contains "$entries" "scratchpad" "builder files stay in the builder"
layer=$(image_layers "$store" multi:latest)
assert_eq "built artifact" "$(tar_cat "$layer" app/artifact.bin)" "artifact content"
assert_eq '["/app/bin/run"]' "$(image_config "$store" multi:latest | jq -c .config.Cmd)" "Cmd"

step "a cached rebuild is the same; a changed builder input changes the result"
assert_eq "$digest" "$(build ctx/multi.toml)" "rebuild"
printf 'only in the builder, changed\n' >ctx/src/builder-only.txt
assert_eq "$digest" "$(build ctx/multi.toml)" "an input the final image doesn't take changes nothing"
printf 'built artifact 2\n' >ctx/src/artifact.bin
d2=$(build ctx/multi.toml)
assert_ne "$digest" "$d2" "a changed artifact changes the image"

step "[image] stage picks the output stage"
sed 's/^name = "multi"$/name = "multi-builder"\nstage = "builder"/' ctx/multi.toml >ctx/builder.toml
d3=$(build ctx/builder.toml)
assert_eq 2 "$(image_layers "$store" multi-builder:latest | wc -l)" "builder stage: two layers"
assert_contains "$(all_entries "$store" multi-builder:latest)" "scratchpad/builder-only.txt" \
    "the builder's own files"
: "$d3"

step "a stage cycle and an unknown stage are recipe errors"
write ctx/cycle.toml <<'EOF'
[image]
name = "cycle"

[stage.a.base]
image = "scratch"

[[stage.a.step]]
copy = [{ from = "b", src = "/x", dest = "/x" }]

[stage.b.base]
image = "scratch"

[[stage.b.step]]
copy = [{ from = "a", src = "/x", dest = "/x" }]
EOF
expect_exit 2 build ctx/cycle.toml
assert_match '^factory: error: (.*/)?cycle\.toml:[0-9]+:[0-9]+: ' "$(error_line)" "cycle location"
assert_match 'cycle|circular' "$(error_line)" "the error says it's a cycle"

step "a copy from a stage of a path it lacks is an error"
write ctx/nopath.toml <<'EOF'
[image]
name = "nopath"

[stage.builder.base]
image = "scratch"

[[stage.builder.step]]
copy = [{ src = "src/artifact.bin", dest = "/out/artifact.bin" }]

[base]
image = "scratch"

[[step]]
copy = [{ from = "builder", src = "/out/absent", dest = "/x" }]
EOF
run_factory build ctx/nopath.toml
[[ $RC -eq 1 || $RC -eq 2 ]] || fail "copy of a missing path from a stage: exit $RC (want 1 or 2)"
assert_contains "$(error_line)" "out/absent" "the missing path is named"
echo "PASS: $TEST_NAME"
