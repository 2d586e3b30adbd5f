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

# ---- stages made by RUN steps, base-only stages, files of a base image --------------------
# The recipe a team writes: a builder stage that makes the program with a RUN step, a final
# stage that copies the result. Whoever copies from a stage sees its whole file system.
if ! privileged || ! command -v runc >/dev/null 2>&1; then
    step "skipped: stages made by RUN steps need root with CAP_SYS_ADMIN and runc"
    echo "PASS: $TEST_NAME"
    exit 0
fi
bb=$(busybox_context)
step "a busybox base image in an OCI layout: a file, a directory, a file to delete"
mkdir -p ctx
{
    busybox_recipe bbbase
    cat <<EOF

[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /etc/conf.d && echo from-base >/etc/base.txt && echo in-dir >/etc/conf.d/a.conf && echo doomed >/etc/doomed.txt"]

[config]
env = { PATH = "/bin" }
EOF
} >ctx/bbbase.toml
build -o "oci:$TEST_DIR/bblayout" ctx/bbbase.toml >/dev/null

write ctx/team.toml <<EOF
[image]
name = "team"

[stage.builder.base]
image = "oci:$TEST_DIR/bblayout"

[[stage.builder.step]]
run = """
mkdir -p /src /out/share/doc && cd /src &&
printf 'echo compiled\\\\n' >app.sh && cp app.sh /out/app && chmod 0755 /out/app &&
echo docs >/out/share/doc/README &&
ln -s /etc/base.txt /out/base-link &&
rm /etc/doomed.txt
"""

[stage.plain.base]
image = "oci:$TEST_DIR/bblayout"

[base]
image = "scratch"

[[step]]
copy = [
  { from = "builder", src = "/out/app", dest = "/app" },
  { from = "builder", src = "/etc/base.txt", dest = "/from-builders-base.txt" },
  { from = "builder", src = "/out/share", dest = "/share" },
  { from = "builder", src = "/out/base-link", dest = "/through-link.txt" },
  { from = "plain", src = "/etc/conf.d", dest = "/conf.d" },
  { from = "plain", src = "/etc/doomed.txt", dest = "/doomed-from-plain.txt" },
]
EOF
step "a builder stage made by a RUN step, a base-only stage, files of the base"
team=$(build ctx/team.toml)
entries=$(all_entries "$store" team:latest)
layer=$(image_layers "$store" team:latest)
assert_eq 1 "$(echo "$layer" | wc -l)" "the final image has its own layer only"
assert_match '(^|'$'\n'')f 0755 0:0 [0-9]+ 0 app('$'\n''|$)' "$entries" "the RUN-made file"
assert_eq "echo compiled" "$(tar_cat "$layer" app)" "the RUN-made file's content"
assert_eq "from-base" "$(tar_cat "$layer" from-builders-base.txt)" \
    "a file of the builder's base image"
assert_eq "docs" "$(tar_cat "$layer" share/doc/README)" "a directory the RUN step made"
assert_eq "from-base" "$(tar_cat "$layer" through-link.txt)" \
    "a symlink made by RUN whose target is in a lower layer"
assert_eq "in-dir" "$(tar_cat "$layer" conf.d/a.conf)" "a directory of a base-only stage"
assert_eq "doomed" "$(tar_cat "$layer" doomed-from-plain.txt)" "a file of a base-only stage"
assert_eq "$team" "$(build ctx/team.toml)" "a cached rebuild is the same"

step "a file a RUN step deleted is gone for whoever copies from the stage"
sed 's|{ from = "plain", src = "/etc/doomed.txt", dest = "/doomed-from-plain.txt" },|{ from = "builder", src = "/etc/doomed.txt", dest = "/doomed" },|' \
    ctx/team.toml >ctx/deleted.toml
run_factory build ctx/deleted.toml
[[ $RC -eq 1 || $RC -eq 2 ]] || fail "copy of a file a RUN step deleted: exit $RC"$'\n'"$ERR"
assert_contains "$(error_line)" "source 'etc/doomed.txt' does not exist in stage 'builder'" \
    "the deleted file is named"

step "why in a fresh store: a copy from a stage that would rebuild"
expect_ok --cache "$TEST_DIR/fresh" why ctx/team.toml
assert_contains "$OUT" "stage 'builder' rebuilds first" "why says the source stage rebuilds"
echo "PASS: $TEST_NAME"
