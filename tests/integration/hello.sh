# recipes/hello.toml builds; the stdout contract (last line `NAME:TAG sha256:<hex>`), the
# digest file, every output kind, the store being a valid OCI layout, a cached rebuild giving
# the same digest, the progress modes, and the store's location rules.
source "$(dirname "$0")/../lib.sh"
need jq python3 sha256sum

recipe=$FACTORY_SOURCE_DIR/recipes/hello.toml

step "first build: stdout contract, digest file, outputs"
digest=$(build --digest-file "$TEST_DIR/digest" -o "oci:$TEST_DIR/layout:v1" \
    -o "oci-archive:$TEST_DIR/hello-oci.tar:v1" -o "docker-archive:$TEST_DIR/hello-docker.tar" \
    "$recipe")
assert_eq "hello:latest $digest" "$(tail -n 1 "$TEST_DIR/last.stdout")" "last stdout line"
assert_eq "$digest" "$(cat "$TEST_DIR/digest")" "--digest-file content"
assert_eq "$(printf '%s\n' "$digest" | od -c)" "$(od -c <"$TEST_DIR/digest")" \
    "--digest-file is exactly sha256:<hex> and a newline"

step "the store is an OCI layout with the ref hello:latest"
store=$TEST_DIR/store
verify_layout "$store"
assert_eq "$digest" "$(layout_digest "$store" hello:latest)" "store ref hello:latest"
manifest=$(blob "$store" "$digest")
assert_eq 2 "$(jq -r .schemaVersion "$manifest")" "manifest schemaVersion"
assert_eq application/vnd.oci.image.manifest.v1+json "$(jq -r .mediaType "$manifest")" \
    "manifest mediaType"
assert_eq application/vnd.oci.image.config.v1+json "$(jq -r .config.mediaType "$manifest")" \
    "config mediaType"
assert_eq 2 "$(jq '.layers | length' "$manifest")" "hello has two layers (busybox, the rest)"
assert_eq "application/vnd.oci.image.layer.v1.tar+gzip" \
    "$(jq -r '.layers | map(.mediaType) | unique | join(",")' "$manifest")" "layer mediaType"
# Sizes in the manifest are the blobs' sizes.
for d in $(jq -r '.config.digest, .layers[].digest' "$manifest"); do
    want=$(jq -r --arg d "$d" '[.config, .layers[]] | map(select(.digest == $d))[0].size' "$manifest")
    assert_eq "$want" "$(stat -c %s "$(blob "$store" "$d")")" "size of $d"
done

step "config: platform, cmd, env, labels, diff_ids, created"
config=$(image_config "$store" hello:latest)
assert_eq linux "$(jq -r .os <<<"$config")" "config os"
assert_eq "$(dpkg --print-architecture)" "$(jq -r .architecture <<<"$config")" "config architecture"
assert_eq '["/bin/hello"]' "$(jq -c .config.Cmd <<<"$config")" "config Cmd"
assert_eq '["PATH=/bin"]' "$(jq -c .config.Env <<<"$config")" "config Env"
assert_eq hello "$(jq -r '.config.Labels["org.opencontainers.image.title"]' <<<"$config")" "label"
assert_eq layers "$(jq -r .rootfs.type <<<"$config")" "rootfs.type"
assert_eq 2 "$(jq '.rootfs.diff_ids | length' <<<"$config")" "two diff_ids"
assert_eq "1970-01-01T00:00:00Z" "$(jq -r .created <<<"$config")" "created = epoch 0"
# diff_id = sha256 of the uncompressed layer.
i=0
for l in $(image_layers "$store" hello:latest); do
    want=$(jq -r ".rootfs.diff_ids[$i]" <<<"$config")
    assert_eq "$want" "sha256:$(gzip -dc "$l" | sha256sum | cut -d' ' -f1)" "diff_id $i"
    i=$((i + 1))
done

step "layer contents"
entries=$(all_entries "$store" hello:latest)
echo "$entries" >"$TEST_DIR/entries"
assert_match '(^|'$'\n'')f 0755 0:0 [0-9]+ 0 bin/busybox('$'\n''|$)' "$entries" "bin/busybox"
assert_match '(^|'$'\n'')l 0777 0:0 0 0 bin/sh -> busybox('$'\n''|$)' "$entries" "bin/sh symlink"
assert_match '(^|'$'\n'')f 0755 0:0 [0-9]+ 0 bin/hello('$'\n''|$)' "$entries" "bin/hello"
assert_not_contains "$entries" "uname=" "owner names are empty"
hello_layer=$(image_layers "$store" hello:latest | tail -n 1)
assert_eq "$(cat "$FACTORY_SOURCE_DIR/recipes/hello/hello.sh")" "$(tar_cat "$hello_layer" bin/hello)" \
    "bin/hello content"
mapfile -t hello_layers < <(image_layers "$store" hello:latest)
busybox_layer=${hello_layers[0]}
assert_eq "$(sha256sum </bin/busybox)" "$(tar_cat "$busybox_layer" bin/busybox | sha256sum)" \
    "bin/busybox content"

step "outputs: oci layout with the requested tag, archives"
verify_layout "$TEST_DIR/layout"
assert_eq "$digest" "$(layout_digest "$TEST_DIR/layout" v1)" "oci: output ref v1"
mkdir "$TEST_DIR/x-oci" && tar -C "$TEST_DIR/x-oci" -xf "$TEST_DIR/hello-oci.tar"
verify_layout "$TEST_DIR/x-oci"
assert_eq "$digest" "$(layout_digest "$TEST_DIR/x-oci" v1)" "oci-archive output ref v1"
mkdir "$TEST_DIR/x-docker" && tar -C "$TEST_DIR/x-docker" -xf "$TEST_DIR/hello-docker.tar"
assert_exists "$TEST_DIR/x-docker/manifest.json"
assert_eq '["hello:latest"]' "$(jq -c '.[0].RepoTags' "$TEST_DIR/x-docker/manifest.json")" \
    "docker-archive RepoTags default to NAME:TAG"
assert_eq 2 "$(jq '.[0].Layers | length' "$TEST_DIR/x-docker/manifest.json")" "docker-archive layers"

step "oci: without a tag uses the recipe's first tag; other refs in the layout are kept"
build -o "oci:$TEST_DIR/layout" "$recipe" >/dev/null
assert_eq "$digest" "$(layout_digest "$TEST_DIR/layout" latest)" "oci:DIR tags the first tag"
assert_eq "$digest" "$(layout_digest "$TEST_DIR/layout" v1)" "the earlier ref v1 is still there"
verify_layout "$TEST_DIR/layout"
assert_eq "blobs index.json oci-layout" "$(ls -A "$TEST_DIR/layout" | tr '\n' ' ' | sed 's/ $//')" \
    "the written layout holds only the layout's files (no index.json.lock)"

step "a cached rebuild gives the same digest, in every progress mode"
for mode in plain json tty auto; do
    again=$(build --progress "$mode" "$recipe")
    assert_eq "$digest" "$again" "digest of a rebuild with --progress $mode"
done
build --progress json "$recipe" >/dev/null
# json progress: every stderr line is a JSON object.
while IFS= read -r line; do
    [[ -z $line ]] && continue
    jq -e 'type == "object"' <<<"$line" >/dev/null 2>&1 ||
        fail "--progress json printed a line that is not a JSON object: $line"
done <"$TEST_DIR/last.stderr"

step "a local build never loads libcurl (factory loads it when a step first reaches the network) nor libarchive"
LD_DEBUG=files "$FACTORY" build "$recipe" >/dev/null 2>"$TEST_DIR/ld.log" ||
    fail "LD_DEBUG=files factory build exited non-zero"$'\n'"$(tail -n 5 "$TEST_DIR/ld.log")"
loaded=$(grep -oE 'file=[^ ]+' "$TEST_DIR/ld.log" | sort -u | tr '\n' ' ')
assert_contains "$loaded" "file=libcrypto.so" "LD_DEBUG=files names the libraries the build loaded"
assert_not_contains "$loaded" "libcurl" "a build of a local recipe loaded libcurl"
assert_not_contains "$loaded" "libarchive" "a build of copy steps onto scratch loaded libarchive"

step "a libarchive without its functions: export says so, exits non-zero, writes nothing"
# factory loads libarchive.so.13 on first use, as libcurl; a library of that name without
# libarchive's functions (first on LD_LIBRARY_PATH) is an error naming what is missing.
mkdir -p "$TEST_DIR/fakearchive"
cc -shared -fPIC -x c -o "$TEST_DIR/fakearchive/libarchive.so.13" /dev/null
RC=0
LD_LIBRARY_PATH=$TEST_DIR/fakearchive "$FACTORY" export hello:latest "rootfs:$TEST_DIR/fake-rootfs" \
    >"$TEST_DIR/last.stdout" 2>"$TEST_DIR/last.stderr" || RC=$?
((RC != 0 && RC < 128)) || fail "with a fake libarchive factory exited $RC"$'\n'"$(cat "$TEST_DIR/last.stderr")"
assert_contains "$(error_line)" "cannot load libarchive: libarchive.so.13 has no archive_entry_atime" \
    "the error names the missing function"
assert_missing "$TEST_DIR/fake-rootfs"

step "store location: --cache, FACTORY_CACHE, XDG_CACHE_HOME, HOME/.cache"
build --cache "$TEST_DIR/s1" "$recipe" >/dev/null
assert_eq "$digest" "$(layout_digest "$TEST_DIR/s1" hello:latest)" "--cache DIR"
FACTORY_CACHE=$TEST_DIR/s2 build "$recipe" >/dev/null
assert_eq "$digest" "$(layout_digest "$TEST_DIR/s2" hello:latest)" "FACTORY_CACHE"
(
    unset FACTORY_CACHE
    XDG_CACHE_HOME=$TEST_DIR/xdg build "$recipe" >/dev/null
)
assert_eq "$digest" "$(layout_digest "$TEST_DIR/xdg/factory" hello:latest)" "XDG_CACHE_HOME/factory"
(
    unset FACTORY_CACHE
    build "$recipe" >/dev/null
)
assert_eq "$digest" "$(layout_digest "$HOME/.cache/factory" hello:latest)" "HOME/.cache/factory"
FACTORY_CACHE=$TEST_DIR/s3 build --cache "$TEST_DIR/s4" "$recipe" >/dev/null
assert_missing "$TEST_DIR/s3"
assert_eq "$digest" "$(layout_digest "$TEST_DIR/s4" hello:latest)" "--cache wins over FACTORY_CACHE"

step "several tags: the last line names the first"
sed -e 's/^tags = .*/tags = ["one", "two"]/' -e 's|^context = "hello"|context = "'"$FACTORY_SOURCE_DIR"'/recipes/hello"|' \
    "$recipe" >"$TEST_DIR/tags.toml"
grep -q 'tags = \["one", "two"\]' "$TEST_DIR/tags.toml" || fail "could not rewrite tags in the recipe"
d2=$(build "$TEST_DIR/tags.toml")
assert_eq "hello:one $d2" "$(last_line)" "last line with two tags"
assert_eq "$digest" "$d2" "tags don't change the manifest"
assert_eq "$d2" "$(layout_digest "$store" hello:two)" "second tag in the store"
step "several recipes: one line each, in order; -o needs a single recipe"
mkdir -p two && echo 2 >two/x
write two/two.toml <<'EOF'
[image]
name = "second"

[[step]]
copy = [{ src = "x", dest = "/x" }]
EOF
expect_ok build --digest-file "$TEST_DIR/digests" "$recipe" two/two.toml
assert_eq 2 "$(grep -cE "^[^ ]+:[^ ]+ $DIGEST_RE\$" "$TEST_DIR/last.stdout")" "two result lines"
assert_eq "hello:latest $digest" "$(grep -E "^[^ ]+:[^ ]+ $DIGEST_RE\$" "$TEST_DIR/last.stdout" | sed -n 1p)" \
    "first recipe first"
assert_match "^second:latest $DIGEST_RE\$" "$(last_line)" "last line: the last recipe"
assert_eq 2 "$(wc -l <"$TEST_DIR/digests")" "--digest-file: one line per recipe"
expect_exit 2 build -o "oci:$TEST_DIR/nope" "$recipe" two/two.toml
assert_eq "factory: error: -o takes a single recipe; build the recipes one at a time" \
    "$(error_line)" "-o takes one value: the recipes after it stay recipes"
assert_missing "$TEST_DIR/nope"
# --arg takes one value too (repeat it), as in docker and podman.
write two/args.toml <<'EOF'
[image]
name = "second"
[args]
V = "1"
[[step]]
copy = [{ src = "x", dest = "/x-${V}" }]
EOF
sed 's/^name = "second"/name = "third"/' two/args.toml >two/args2.toml
expect_ok build --arg V=5 two/args.toml two/args2.toml
assert_eq 2 "$(grep -cE "^[^ ]+:[^ ]+ $DIGEST_RE\$" "$TEST_DIR/last.stdout")" "--arg V=5 A B builds A and B"
assert_match "^third:latest $DIGEST_RE\$" "$(last_line)" "the second recipe was built, not taken for an --arg"

step "a recipe error in one of several recipes: nothing built, no ref moves (exit 2)"
write two/nosrc.toml <<'EOF'
[image]
name = "nosrc"

[[step]]
copy = [{ src = "missing.txt", dest = "/x" }]
EOF
write two/fresh.toml <<'EOF'
[image]
name = "fresh"

[[step]]
copy = [{ src = "x", dest = "/fresh" }]
EOF
expect_exit 2 build two/fresh.toml two/nosrc.toml
assert_eq "factory: error: two/nosrc.toml:5:9: copy: source 'missing.txt' does not exist in the context ($TEST_DIR/two)" \
    "$(error_line)" "the missing source, found while planning"
assert_eq "" "$(cat "$TEST_DIR/last.stdout")" "no result line"
assert_eq "" "$(layout_digest "$FACTORY_CACHE" fresh:latest)" "the good recipe was not built"

step "a --digest-file that can't be written: an error before the build, no ref moves"
before=$(layout_digest "$FACTORY_CACHE" second:latest)
echo 3 >two/x
expect_exit 1 build --digest-file /proc/no-such-dir/digest two/two.toml
assert_match "^factory: error: --digest-file /proc/no-such-dir/digest: cannot create " \
    "$(error_line)" "the error names --digest-file"
assert_eq "" "$(cat "$TEST_DIR/last.stdout")" "no result line"
assert_eq "$before" "$(layout_digest "$FACTORY_CACHE" second:latest)" "second:latest did not move"

step "--version"
run_factory --version
assert_eq 0 "$RC" "--version exits 0"
assert_match '^factory [0-9]+\.[0-9]+' "$OUT" "--version prints the version"
echo "PASS: $TEST_NAME"
