# factory push/pull against a real docker-registry over plain HTTP, with skopeo and podman on
# the other side: same digests both ways, no-op pushes, images factory never made, build and
# export to docker://, and what an interrupted pull leaves (nothing).
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need skopeo jq
insecure=(--tls-verify=false)

run_registry plain
R=$REGISTRY
build_hello

step "push: skopeo reads the same digest"
expect_ok push "${insecure[@]}" hello:latest "$R/test/hello:v1"
assert_eq "docker://$R/test/hello:v1 $HELLO" "$(last_line)" "push prints DEST DIGEST"
assert_eq "factory: warning: TLS verification is off for $R (--tls-verify=false; plain HTTP allowed); use it only for a registry you run yourself" \
    "$(grep 'warning: TLS' "$TEST_DIR/last.stderr")" "the insecure warning"
assert_contains "$ERR" "3 uploaded" "every blob uploaded"
assert_eq "$HELLO" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/test/hello:v1")" \
    "skopeo's digest of what factory pushed"
skopeo copy -q --src-tls-verify=false "docker://$R/test/hello:v1" "dir:$TEST_DIR/skdir" >/dev/null

step "a no-op push uploads nothing and puts no manifest"
expect_ok push "${insecure[@]}" --progress plain hello:latest "docker://$R/test/hello:v1"
assert_contains "$ERR" "0 uploaded (0 B), 0 mounted, 3 already there, manifest unchanged" "no-op push"

step "--tag and a second repository; --mount-from mounts instead of uploading"
expect_ok push "${insecure[@]}" --tag extra --mount-from test/hello hello:latest "$R/other/hello:v2"
assert_contains "$ERR" "0 uploaded (0 B), 3 mounted" "cross-repository mount"
for t in v2 extra; do
    assert_eq "$HELLO" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/other/hello:$t")" "tag $t"
done

step "mount sources the store knows: a push to a third repository mounts without --mount-from"
expect_ok push "${insecure[@]}" --progress plain hello:latest "$R/third/hello:v1"
assert_contains "$ERR" "0 uploaded (0 B), 3 mounted, 0 already there" "mounted from a repository the store knows"
assert_eq "$HELLO" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/third/hello:v1")" \
    "the mounted image is whole"

step "pull into an empty store: same digest, verified, named by the reference"
export FACTORY_CACHE=$TEST_DIR/store2
expect_ok pull "${insecure[@]}" "$R/test/hello:v1"
assert_eq "$R/test/hello:v1 $HELLO" "$(last_line)" "pull prints REF DIGEST"
expect_ok cache verify
assert_contains "$OUT" "clean" "cache verify after pull"
expect_ok images
assert_contains "$OUT" "$R/test/hello:v1" "the pulled ref"
expect_ok pull "${insecure[@]}" "$R/test/hello@$HELLO"
assert_eq "$R/test/hello@$HELLO $HELLO" "$(last_line)" "pull by digest"
expect_ok push "${insecure[@]}" --progress plain "$R/test/hello:v1" "$R/from-pull/hello:v1"
assert_contains "$ERR" "0 uploaded (0 B), 3 mounted" "a pulled image's blobs are mounted from where they came"
expect_ok export "$R/test/hello:v1" "oci:$TEST_DIR/pulled:p"
assert_eq "$HELLO" "$(layout_digest "$TEST_DIR/pulled" p)" "the pulled image exports unchanged"

step "an image factory never made: skopeo's Docker schema 2 conversion"
skopeo copy -q --format v2s2 --dest-tls-verify=false "oci:$TEST_DIR/pulled:p" "docker://$R/foreign/hello:v2s2" >/dev/null
foreign=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/foreign/hello:v2s2")
assert_ne "$HELLO" "$foreign" "a Docker schema 2 manifest is other bytes"
expect_ok pull "${insecure[@]}" "$R/foreign/hello:v2s2"
assert_eq "$R/foreign/hello:v2s2 $foreign" "$(last_line)" "factory pulls skopeo's Docker image"
assert_eq "application/vnd.docker.distribution.manifest.v2+json" \
    "$(jq -r .mediaType "$(blob "$FACTORY_CACHE" "$foreign")")" "stored with its own media type"
expect_ok cache verify
assert_contains "$OUT" "clean" "cache verify after the foreign pull"

step "build -o docker:// and export docker://"
export FACTORY_CACHE=$TEST_DIR/store
expect_ok build "${insecure[@]}" "$FACTORY_SOURCE_DIR/recipes/hello.toml" -o "docker://$R/built/hello:b1" \
    -o "oci:$TEST_DIR/also:x"
assert_contains "$OUT" "docker://$R/built/hello:b1 $HELLO" "build pushes"
assert_eq "factory: warning: TLS verification is off for every registry of this command: bases, --cache-from and --cache-to caches, docker:// outputs (--tls-verify=false; plain HTTP allowed); use it only for a registry you run yourself" \
    "$(grep 'warning: TLS' "$TEST_DIR/last.stderr")" "a build warns once, for all it covers (its docker:// output too)"
assert_eq "$HELLO" "$(layout_digest "$TEST_DIR/also" x)" "and writes the other outputs"
expect_ok export "${insecure[@]}" hello:latest "docker://$R/exported/hello:e1"
assert_eq "docker://$R/exported/hello:e1 $HELLO" "$(last_line)" "export pushes"
assert_eq "$HELLO" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/exported/hello:e1")" \
    "exported digest"

step "build --push: the recipe's own name and every tag; push --all-tags"
mkdir -p "$TEST_DIR/team"
cp -a "$FACTORY_SOURCE_DIR/recipes/hello" "$TEST_DIR/team/hello"
sed -e "s|^name = \"hello\"|name = \"$R/team/hello\"|" -e 's|^tags = \["latest"\]|tags = ["1.0", "latest"]|' \
    "$FACTORY_SOURCE_DIR/recipes/hello.toml" >"$TEST_DIR/team/hello.toml"
grep -q "^name = \"$R/team/hello\"" "$TEST_DIR/team/hello.toml" || fail "the recipe was not renamed"
expect_ok build "${insecure[@]}" --push "$TEST_DIR/team/hello.toml"
team=$(last_line)
team=${team##* }
assert_contains "$OUT" "docker://$R/team/hello:1.0 $team" "--push pushes the recipe's first tag"
for t in 1.0 latest; do
    assert_eq "$team" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/team/hello:$t")" \
        "--push tag $t"
done
expect_exit 2 build "${insecure[@]}" --push "$FACTORY_SOURCE_DIR/recipes/hello.toml"
assert_contains "$(error_line)" "--push: the recipe's image name 'hello' names no registry" "--push needs a registry name"
expect_ok push "${insecure[@]}" --all-tags "$R/team/hello" "$R/mirror/hello"
assert_eq "docker://$R/mirror/hello:1.0 $team
docker://$R/mirror/hello:latest $team" "$OUT" "--all-tags pushes each tag"
assert_eq "$team" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R/mirror/hello:latest")" \
    "--all-tags tag latest"
expect_exit 2 push "${insecure[@]}" --all-tags hello:latest "$R/mirror/hello"
assert_contains "$(error_line)" "push --all-tags: give the source as a name without a tag" "--all-tags takes a name"
expect_exit 2 push "${insecure[@]}" --all-tags hello "$R/mirror/hello:v1"
assert_contains "$(error_line)" "push --all-tags: give the destination as HOST/REPO without a tag" "--all-tags takes a repository"
expect_exit 2 push "${insecure[@]}" --all-tags nothing-here "$R/mirror/hello"
assert_contains "$(error_line)" "push --all-tags: no tags of 'nothing-here' in the store" "--all-tags of an unknown name"

step "errors: unknown tag, no registry, bad reference, TLS verification on a plain registry"
expect_exit 1 pull "${insecure[@]}" "$R/test/hello:nope"
assert_eq "factory: error: registry $R: repository test/hello: GET manifest nope: HTTP 404 (MANIFEST_UNKNOWN: manifest unknown)" \
    "$(error_line)" "404 names registry, repository, operation, status"
dead=127.0.0.1:$(free_port)
expect_exit 1 pull "${insecure[@]}" --retries 1 --retry-time 5 "$dead/test/hello:v1"
assert_match "^factory: error: registry $dead: GET /v2/: .*(refused|connect).*; gave up after 2 attempts in" \
    "$(error_line)" "connection refused, retried, then given up"
expect_exit 2 pull "$R/Bad/Name"
assert_contains "$(error_line)" "invalid repository component 'Bad'" "a bad reference is a usage error"
expect_exit 1 pull "$R/test/hello:v1"
assert_match "^factory: error: registry $R: GET /v2/: .*(SSL|TLS|ssl|tls)" "$(error_line)" \
    "TLS is required unless --tls-verify=false"

step "--progress json: every line of stderr is a JSON object, warnings too"
# each_line_json WHAT: every line of the last stderr parses as one JSON object.
each_line_json() {
    local line
    [[ -s $TEST_DIR/last.stderr ]] || fail "$1: no stderr"
    while IFS= read -r line; do
        jq -e 'type == "object"' <<<"$line" >/dev/null 2>&1 || fail "$1: not a JSON object: $line"
    done <"$TEST_DIR/last.stderr"
}
warnings() { jq -r 'select(.event == "warning") | .message' "$TEST_DIR/last.stderr"; }
FACTORY_CACHE=$TEST_DIR/json-store expect_ok pull "${insecure[@]}" --progress json "$R/test/hello:v1"
each_line_json "pull --progress json"
assert_eq "TLS verification is off for $R (--tls-verify=false; plain HTTP allowed); use it only for a registry you run yourself" \
    "$(warnings)" "pull: the TLS warning is an event"

step "build --cache-to: the blobs it exports are mount sources for a later push"
export FACTORY_CACHE=$TEST_DIR/cache-store
dead=127.0.0.1:$(free_port)
expect_ok build "${insecure[@]}" --progress json --cache-from "docker://$dead/ci/none:x" \
    --cache-to "docker://$R/ci/cache:app" "$FACTORY_SOURCE_DIR/recipes/hello.toml"
each_line_json "build --progress json"
assert_eq "TLS verification is off for every registry of this command: bases, --cache-from and --cache-to caches, docker:// outputs (--tls-verify=false; plain HTTP allowed); use it only for a registry you run yourself" \
    "$(warnings | sed -n 1p)" "build: the TLS warning is an event, naming what it covers"
assert_match "^--cache-from docker://$dead/ci/none:x: registry $dead: GET /v2/: .*; building without it$" \
    "$(warnings | sed -n 2p)" "build: the --cache-from warning is an event"
assert_eq 2 "$(warnings | wc -l)" "two warnings"
expect_ok push "${insecure[@]}" --progress plain hello:latest "$R/ci/app:latest"
assert_match "push: $R/ci/app:latest: 1 uploaded \([0-9.]+ [kM]?B\), 2 mounted, 0 already there" "$ERR" \
    "the layers the cache export uploaded are mounted from ci/cache; only the config is uploaded"
assert_eq 2 "$(grep -c "mounted from ci/cache" "$TEST_DIR/last.stderr")" "both layers from the cache's repository"
export FACTORY_CACHE=$TEST_DIR/store

step "podman pulls and runs what factory pushed"
if command -v podman >/dev/null && privileged; then
    podman_setup
    pm pull -q --tls-verify=false "$R/test/hello:v1" >/dev/null
    assert_eq "Hello from factory" "$(pm run --rm --network none --pull never "$R/test/hello:v1")" \
        "podman runs the pushed image"
    assert_eq "$HELLO" "$(pm image inspect --format '{{.Digest}}' "$R/test/hello:v1")" "podman's digest"
else
    echo "podman part skipped (needs podman and root)" >&2
fi
echo "PASS: $TEST_NAME"
