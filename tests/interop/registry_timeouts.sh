# --timeout bounds every phase of an attempt (docs/registry.md "Failures, retries and errors"):
# a server that accepts the connection and never answers (the TLS handshake, then nothing to
# fall back to) and a blob whose body stops half-way both end an attempt after about --timeout
# seconds, not curl's 30 s connect timeout or its 5-second rate window later.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need python3 jq bc
build_hello

# retry_seconds: when the first retry event of the last run's json stderr came (seconds since
# the command started).
retry_seconds() { jq -rR 'fromjson? | select(.event == "retry") | .seconds' "$TEST_DIR/last.stderr" | head -n1; }
# within LOW HIGH VALUE WHAT
within() {
    echo "$4: ${3:-none}s" >&2
    [[ -n $3 && $(echo "$3 >= $1 && $3 <= $2" | bc) -eq 1 ]] || fail "$4: ${3:-none}s, expected $1 to $2 s"
}

step "a server that accepts and never answers: each attempt ends after --timeout"
run_python_server silent accept_only_server.py
S=127.0.0.1:$SERVER_PORT
start=$(date +%s.%N)
FACTORY_CACHE=$TEST_DIR/silent expect_exit 1 pull --tls-verify=false --progress json --timeout 2 \
    --retries 1 "$S/x/y:z"
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
within 1.9 4 "$(retry_seconds)" "the first attempt (TLS handshake) of a silent server"
# 2 attempts of 2 s, a backoff of at most 0.5 s, start-up.
within 3.9 6.5 "$elapsed" "the whole pull with --retries 1"
assert_match "^factory: error: registry $S: GET /v2/: .*(timed out|timeout|stalled).*; gave up after 2 attempts in [0-9.]+s$" \
    "$(error_line)" "the final error says it timed out"

step "a blob that stalls half-way: the retry starts --timeout after the stall, and resumes"
run_registry plain
expect_ok push --tls-verify=false hello:latest "$REGISTRY/t/hello:v1"
rules=$TEST_DIR/rules.json
layer=$(layer_digests "$TEST_DIR/store" "$HELLO" | head -n1)
printf '[{"match": " GET /v2/t/hello/blobs/%s", "fault": "stall", "seconds": 40, "times": 1}]' \
    "$layer" >"$rules"
run_python_server proxy registry_fault_proxy.py "$REGISTRY" "$rules" "$TEST_DIR/proxy.requests"
P=127.0.0.1:$SERVER_PORT
for t in 1 3; do
    FACTORY_CACHE=$TEST_DIR/stall$t expect_ok pull --tls-verify=false --progress json --timeout $t \
        "$P/t/hello:v1"
    assert_eq "$P/t/hello:v1 $HELLO" "$(last_line)" "the pull with --timeout $t finishes"
    assert_contains "$(jq -r 'select(.event == "retry") | .message' "$TEST_DIR/last.stderr")" \
        "GET blob $layer: stalled: no byte sent or received for ${t}s; attempt 2/5" "the retry says why"
    # The stall starts after the half of the layer the proxy sends at once.
    within "$t" "$((t + 2))" "$(retry_seconds)" "--timeout $t: the stalled attempt"
    printf '[{"match": " GET /v2/t/hello/blobs/%s", "fault": "stall", "seconds": 40, "times": 1}]' \
        "$layer" >"$rules.tmp"
    mv "$rules.tmp" "$rules" # a new rule file: its "times" counts again
done
echo "PASS: $TEST_NAME"
