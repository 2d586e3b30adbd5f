# Registries that fail: a proxy in front of docker-registry resets, truncates and stalls blob
# transfers, answers 500/503/429, and serves bad manifests and blobs. Pull and push must finish
# with the same digests under each transient fault, give up with the documented error when a
# fault never ends, and store nothing they could not verify.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need python3 jq
build_hello
run_registry plain
expect_ok push --tls-verify=false hello:latest "$REGISTRY/t/hello:v1"
rules=$TEST_DIR/rules.json
echo '[]' >"$rules"
run_python_server proxy registry_fault_proxy.py "$REGISTRY" "$rules" "$TEST_DIR/proxy.requests"
P=127.0.0.1:$SERVER_PORT
config=$(config_digest "$TEST_DIR/store" "$HELLO")
layer=$(layer_digests "$TEST_DIR/store" "$HELLO" | head -n1)
opts=(--tls-verify=false --progress plain --timeout 2 --retries 4 --retry-time 60)

# set_rules JSON: the proxy re-reads its rules when the file changes.
set_rules() {
    printf '%s' "$1" >"$rules.tmp"
    mv "$rules.tmp" "$rules"
}
n=0
# pull_ok WHAT: a pull into a fresh store through the proxy must give hello's digest, verified.
pull_ok() {
    n=$((n + 1))
    FACTORY_CACHE=$TEST_DIR/pull$n expect_ok pull "${opts[@]}" "$P/t/hello:v1"
    assert_eq "$P/t/hello:v1 $HELLO" "$(last_line)" "pull under: $1"
    PULL_ERR=$ERR
    FACTORY_CACHE=$TEST_DIR/pull$n expect_ok cache verify
    assert_contains "$OUT" "clean" "cache verify under: $1"
}
# nothing_stored STORE: no ref and no blob but what verified.
nothing_stored() {
    if [[ -f $1/index.json ]]; then
        assert_eq 0 "$(jq '.manifests | length' "$1/index.json")" "no ref after a failed pull"
    fi
    FACTORY_CACHE=$1 run_factory cache verify
    [[ $RC -eq 0 || ! -e $1/oci-layout ]] || fail "cache verify after a failed pull: $ERR"
}

step "pull: a connection reset in the middle of a layer resumes with Range"
set_rules '[{"match": " GET /v2/t/hello/blobs/'"$layer"'", "fault": "reset", "times": 2}]'
pull_ok "reset mid-blob"
assert_contains "$PULL_ERR" "resuming at byte" "the retry resumed instead of starting over"
grep -q "fault=reset" "$TEST_DIR/proxy.requests" || fail "the fault was not applied"

step "pull: a truncated body, a stall past --timeout"
set_rules '[{"match": " GET /v2/t/hello/blobs/'"$layer"'", "fault": "truncate", "times": 1}]'
pull_ok "truncated body"
set_rules '[{"match": " GET /v2/t/hello/blobs/'"$layer"'", "fault": "stall", "seconds": 6, "times": 1}]'
pull_ok "stall"
assert_contains "$PULL_ERR" "retry: " "the stall was reported as a retry"

step "pull: 500, 503 and 429 with Retry-After"
set_rules '[{"match": " GET /v2/t/hello/manifests/v1", "fault": "500", "times": 2},
            {"match": " GET /v2/t/hello/blobs/", "fault": "503", "times": 2}]'
pull_ok "500 and 503"
set_rules '[{"match": " GET /v2/t/hello/blobs/'"$config"'", "fault": "429", "retry_after": 2, "times": 1}]'
start=$(date +%s.%N)
pull_ok "429"
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
[[ $(echo "$elapsed >= 1.9" | bc) -eq 1 ]] || fail "Retry-After: 2 was not honoured (took ${elapsed}s)"
assert_contains "$PULL_ERR" "HTTP 429; attempt 2/5 in 2.0s" "the retry event shows the wait"

step "push: 500 and 503 on uploads and on the manifest, 429 on a HEAD"
set_rules '[{"match": " POST /v2/t/pushed/blobs/uploads/", "fault": "503", "times": 2},
            {"match": " PUT /v2/t/pushed/blobs/uploads/", "fault": "500", "times": 1},
            {"match": " HEAD /v2/t/pushed/blobs/", "fault": "429", "retry_after": 0, "times": 1},
            {"match": " PUT /v2/t/pushed/manifests/", "fault": "503", "times": 1}]'
expect_ok push "${opts[@]}" hello:latest "$P/t/pushed:v1"
assert_eq "docker://$P/t/pushed:v1 $HELLO" "$(last_line)" "push under faults"
set_rules '[]'
FACTORY_CACHE=$TEST_DIR/pushed-back expect_ok pull --tls-verify=false "$REGISTRY/t/pushed:v1"
assert_eq "$REGISTRY/t/pushed:v1 $HELLO" "$(last_line)" "what was pushed under faults is intact"

step "a no-op push asks one HEAD per tag and nothing else"
: >"$TEST_DIR/proxy.requests"
expect_ok push "${opts[@]}" --tag v1b hello:latest "$P/t/pushed:v1"
: >"$TEST_DIR/proxy.requests"
expect_ok push "${opts[@]}" --tag v1b hello:latest "$P/t/pushed:v1"
assert_contains "$ERR" "0 uploaded (0 B), 0 mounted, 3 already there, manifest unchanged" "the no-op push"
assert_eq "HEAD /v2/t/pushed/manifests/v1
HEAD /v2/t/pushed/manifests/v1b" "$(grep -v ' GET /v2/ ' "$TEST_DIR/proxy.requests" | cut -d' ' -f2,3)" \
    "the requests of a no-op push"

step "push: a chunked upload cut mid-PATCH goes on from the registry's offset"
layer_size=$(stat -c %s "$(blob "$TEST_DIR/store" "$layer")")
[[ $layer_size -gt $((3 * 256 * 1024)) ]] || fail "the first layer ($layer_size bytes) is too small for 3 chunks"
: >"$TEST_DIR/proxy.requests"
# The store knows t/pushed has every blob now; forget it, or the push would mount them all.
rm -rf "$TEST_DIR/store/registry-sources"
set_rules '[{"match": " PATCH /v2/t/chunked/blobs/uploads/", "fault": "cut", "after": 2, "times": 1}]'
NO_COLOR=1 expect_ok push --tls-verify=false --progress tty --timeout 2 --retries 4 --chunk-size 256KiB hello:latest "$P/t/chunked:v1"
assert_eq "docker://$P/t/chunked:v1 $HELLO" "$(last_line)" "chunked push under a cut"
assert_contains "$ERR" "PATCH blob $layer: resuming at byte 524288" "resumed at the registry's offset"
grep -q "PATCH .* fault=cut" "$TEST_DIR/proxy.requests" || fail "the cut was not applied"
assert_match "=> \[push ${layer:0:19}\] [0-9.]+ [kM]B pushed, [0-9.]+ [kMG]?B/s" "$ERR" "the blob's line says its rate"
sent=$(grep " PATCH /v2/t/chunked/blobs/uploads/" "$TEST_DIR/proxy.requests" | sed 's/.* bytes=//' | paste -sd+ | bc)
[[ $sent -ge $layer_size && $sent -lt $((2 * layer_size)) ]] ||
    fail "chunked upload sent $sent bytes for a $layer_size-byte layer (expected under twice)"
assert_eq 3 "$(grep -c " POST /v2/t/chunked/blobs/uploads/" "$TEST_DIR/proxy.requests")" \
    "one upload session per blob: no restart from byte 0"
rm -rf "$TEST_DIR/store/registry-sources"
set_rules '[{"match": " PATCH /v2/t/chunked416/blobs/uploads/", "fault": "serve", "status": 416, "headers": {"Range": "0-0"}, "after": 1, "times": 1}]'
expect_ok push "${opts[@]}" --chunk-size 256KiB hello:latest "$P/t/chunked416:v1"
assert_eq "docker://$P/t/chunked416:v1 $HELLO" "$(last_line)" "chunked push after a 416"
assert_contains "$ERR" "PATCH blob $layer: resuming at byte 262144" "a 416 asks the registry where it is"
set_rules '[]'
for r in chunked chunked416; do
    FACTORY_CACHE=$TEST_DIR/$r-back expect_ok pull --tls-verify=false "$REGISTRY/t/$r:v1"
    assert_eq "$REGISTRY/t/$r:v1 $HELLO" "$(last_line)" "what was pushed in chunks is intact ($r)"
done
expect_exit 2 push --tls-verify=false --chunk-size 1K hello:latest "$P/t/chunked:v2"
assert_eq "factory: error: --chunk-size 1K: at least 64KiB" "$(error_line)" "a too-small chunk size"

step "a fault that never ends: the documented error, exit 1"
set_rules '[{"match": " GET /v2/t/hello/blobs/", "fault": "503", "times": -1}]'
FACTORY_CACHE=$TEST_DIR/never expect_exit 1 pull --tls-verify=false --retries 2 --jobs 1 "$P/t/hello:v1"
assert_match "^factory: error: registry $P: repository t/hello: GET blob sha256:[0-9a-f]{64}: HTTP 503 \(UNAVAILABLE: injected\); gave up after 3 attempts in [0-9.]+s$" \
    "$(error_line)" "the final error"
nothing_stored "$TEST_DIR/never"
rm -rf "$TEST_DIR/store/registry-sources"
set_rules '[{"match": " PATCH /v2/t/never/blobs/uploads/", "fault": "503", "after": 1, "times": -1}]'
expect_exit 1 push --tls-verify=false --retries 2 --chunk-size 256KiB hello:latest "$P/t/never:v1"
assert_match "^factory: error: registry $P: repository t/never: PATCH blob $layer: HTTP 503 \(UNAVAILABLE: injected\); gave up after 3 attempts in [0-9.]+s$" \
    "$(error_line)" "a chunk that keeps failing gives up"
set_rules '[{"match": " GET /v2/t/hello/blobs/", "fault": "503", "times": -1}]'
FACTORY_CACHE=$TEST_DIR/never2 expect_exit 1 pull --tls-verify=false --retries 100 --retry-time 2 "$P/t/hello:v1"
assert_match "gave up after [0-9]+ attempts in [0-9.]+s$" "$(error_line)" "bounded in total time"
set_rules '[{"match": " GET /v2/t/hello/manifests/", "fault": "serve", "status": 404, "body": "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"gone\"}]}", "times": -1}]'
: >"$TEST_DIR/proxy.requests"
FACTORY_CACHE=$TEST_DIR/never3 expect_exit 1 pull --tls-verify=false "$P/t/hello:v1"
assert_eq 1 "$(grep -c "GET /v2/t/hello/manifests/v1" "$TEST_DIR/proxy.requests")" "404 is not retried"
assert_eq "factory: error: registry $P: repository t/hello: GET manifest v1: HTTP 404 (MANIFEST_UNKNOWN: gone)" \
    "$(error_line)" "the 404 error"
assert_not_contains "$ERR" "retry:" "no retry on 404"

step "bad input: nothing is stored"
mf=application/vnd.oci.image.manifest.v1+json
bad_pull() { # bad_pull RULES EXPECTED-ERROR-PART
    set_rules "$1"
    n=$((n + 1))
    FACTORY_CACHE=$TEST_DIR/bad$n expect_exit 1 pull --tls-verify=false --retries 1 "$P/t/hello:v1"
    assert_contains "$(error_line)" "$2" "bad input: $2"
    assert_not_contains "$ERR" "retry:" "bad input is not retried: $2"
    BAD_ERR=$(error_line)
    nothing_stored "$TEST_DIR/bad$n"
}
bad_pull '[{"match": " GET /v2/t/hello/manifests/v1", "fault": "serve", "headers": {"Content-Type": "'$mf'"}, "body": "{\"schemaVersion\": 2, \"config\": 7}"}]' \
    "GET manifest v1: invalid manifest"
bad_pull '[{"match": " GET /v2/t/hello/manifests/v1", "fault": "serve", "headers": {"Content-Type": "'$mf'"}, "body_size": 5000000}]' \
    "GET manifest v1: manifest is larger than 4 MiB"
bad_pull '[{"match": " GET /v2/t/hello/manifests/v1", "fault": "serve", "headers": {"Content-Type": "'$mf'"}, "body": "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}"}]' \
    "but the document says mediaType 'application/vnd.oci.image.index.v1+json'"
size=$(stat -c %s "$(blob "$TEST_DIR/store" "$config")")
bad_pull '[{"match": " GET /v2/t/hello/blobs/'"$config"'", "fault": "serve", "body_size": '"$size"'}]' \
    "GET blob $config: "
assert_contains "$BAD_ERR" "does not match its content: content hashes to sha256:" "a wrong-digest blob says so"
bad_pull '[{"match": " GET /v2/t/hello/blobs/'"$config"'", "fault": "serve", "body_size": '"$((size + 10))"'}]' \
    "the registry sent more than the descriptor's $size bytes"

step "an interrupted pull leaves no ref"
set_rules '[{"match": " GET /v2/t/hello/blobs/'"$layer"'", "fault": "stall", "seconds": 30, "times": 1}]'
FACTORY_CACHE=$TEST_DIR/killed "$FACTORY" pull --tls-verify=false "$P/t/hello:v1" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    grep -q "fault=stall" "$TEST_DIR/proxy.requests" && break
    sleep 0.1
done
sleep 0.3
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
nothing_stored "$TEST_DIR/killed"
[[ ! -e $TEST_DIR/killed/blobs/sha256/${layer#sha256:} ]] || fail "the stalled layer was stored"
echo "PASS: $TEST_NAME"
