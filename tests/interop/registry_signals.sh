# A signal stops registry work as it stops a build (docs/cli.md "Interrupting a build"): with
# the fault proxy holding a transfer open, SIGTERM ends a --cache-to export, a --cache-from
# download (which must not fall back to running the step), a pull and a cache export within seconds,
# with exit 143 and `factory: error: interrupted by SIGTERM` as the last line; nothing is
# published (the cache tag stays, no --digest-file) and no partial blob stays in STORE/tmp.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need jq python3 crun curl
need_root

run_registry plain
run_fault_proxy
rules=$RULES
opts=(--tls-verify=false --progress plain)

# A RUN step that takes 8 s: a fallback to running it shows in the time a stop takes.
mkdir -p ctx
{
    busybox_recipe sig
    cat <<'EOF'

[args]
V = "1"

[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox head -c 4000000 /dev/urandom >/r && echo ${V} >/v && /bin/busybox sleep 8"]
EOF
} >ctx/sig.toml

# cache_digest: the manifest digest the registry's ci/sig:main names.
cache_digest() {
    curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://$REGISTRY/v2/ci/sig/manifests/main" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }'
}

# stop_when PATTERN ARGS…: factory ARGS in the background, SIGTERM once the proxy has seen a
# request matching PATTERN (the one it holds); checks the exit, the last line and the time.
stop_when() {
    local pattern=$1 pid rc=0 start
    shift
    : >"$TEST_DIR/proxy.requests"
    "$FACTORY" "$@" >stop.stdout 2>stop.stderr &
    pid=$!
    for _ in $(seq 1 300); do
        grep -qE "$pattern" "$TEST_DIR/proxy.requests" && break
        sleep 0.1
    done
    grep -qE "$pattern" "$TEST_DIR/proxy.requests" ||
        fail "no request matching '$pattern' within 30 s"$'\n'"$(tail -n 5 stop.stderr)"
    sleep 0.3 # the body half sent: the transfer is under way
    start=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    STOP_SECONDS=$(echo "$(date +%s.%N) - $start" | bc)
    assert_eq 143 "$rc" "exit code of factory $1, stopped"$'\n'"$(tail -n 5 stop.stderr)"
    assert_eq "factory: error: interrupted by SIGTERM" "$(tail -n 1 stop.stderr)" "last line of factory $1"
    (($(echo "$STOP_SECONDS < 4" | bc))) || fail "factory $1 took $STOP_SECONDS s to stop"
    assert_eq "" "$(ls -A "$FACTORY_CACHE/tmp" 2>/dev/null)" "STORE/tmp after factory $1 stopped"
}

step "agent A fills the cache and pushes the image"
agent A
built "${opts[@]}" --cache-to "docker://$P/ci/sig:main" ctx/sig.toml
cached=$(cache_digest)
[[ -n $cached ]] || fail "no cache manifest at ci/sig:main"
expect_ok push --tls-verify=false sig:latest "$P/ci/img:1"

step "SIGTERM while --cache-to merges with the cache there: not exported, no --digest-file"
echo '[{"match": " GET /v2/ci/sig/manifests/", "fault": "stall", "seconds": 30, "times": -1}]' >"$rules"
stop_when " GET /v2/ci/sig/manifests/" build "${opts[@]}" --arg V=2 \
    --cache-to "docker://$P/ci/sig:main" --digest-file d.txt ctx/sig.toml
assert_eq "$cached" "$(cache_digest)" "the cache tag after the stopped export"
assert_missing d.txt
assert_eq "" "$(cat stop.stdout)" "no result line"

step "SIGTERM during a --cache-from download: no fallback to running the step"
agent B
echo '[{"match": " GET /v2/ci/sig/blobs/", "fault": "stall", "seconds": 30, "times": -1, "after": 1}]' >"$rules"
stop_when " GET /v2/ci/sig/blobs/.* fault=stall" build "${opts[@]}" \
    --cache-from "docker://$P/ci/sig:main" ctx/sig.toml
assert_not_contains "$(cat stop.stderr)" "runtime: " "the RUN step did not start"

step "SIGTERM during a pull and during a cache export"
agent C
echo '[{"match": " GET /v2/ci/img/blobs/", "fault": "stall", "seconds": 30, "times": -1}]' >"$rules"
stop_when " GET /v2/ci/img/blobs/" pull --tls-verify=false "$P/ci/img:1"
expect_ok cache verify
assert_not_contains "$OUT$ERR" "stale temps" "cache verify after the stopped pull"
agent A
echo '[{"match": " GET /v2/ci/sig/manifests/", "fault": "stall", "seconds": 30, "times": -1}]' >"$rules"
stop_when " GET /v2/ci/sig/manifests/" cache export --tls-verify=false "docker://$P/ci/sig:main"
assert_eq "$cached" "$(cache_digest)" "the cache tag after the stopped cache export"
echo '[]' >"$rules"
echo "PASS: $TEST_NAME"
