# Helpers for the registry tests (tests/interop/registry*.sh); source after lib.sh.

# run_registry NAME [EXTRA_TOP_YAML [EXTRA_HTTP_YAML [SCHEME]]]: a docker-registry on a free
# 127.0.0.1 port with storage under $TEST_DIR/NAME; sets REGISTRY (host:port). Stopped at exit.
run_registry() {
    need docker-registry curl
    local name=$1 top=${2:-} http=${3:-} scheme=${4:-http} port dir i code
    port=$(free_port)
    dir=$TEST_DIR/$name
    mkdir -p "$dir/data"
    {
        printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$dir/data"
        printf '  delete:\n    enabled: true\n'
        [[ -n $top ]] && printf '%s\n' "$top"
        printf 'http:\n  addr: 127.0.0.1:%s\n' "$port"
        [[ -n $http ]] && printf '%s\n' "$http"
    } >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    local pid=$!
    _lib_on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    REGISTRY=127.0.0.1:$port
    for i in $(seq 1 100); do
        code=$(curl -ks -o /dev/null -w '%{http_code}' "$scheme://$REGISTRY/v2/" || true)
        [[ $code != 000 ]] && return 0
        kill -0 "$pid" 2>/dev/null || fail "docker-registry $name died: $(tail -n 5 "$dir/log")"
        sleep 0.1
    done
    fail "docker-registry $name did not answer on $REGISTRY"
}

# run_python_server NAME SCRIPT ARGS…: a server of tests/data that writes its port to a file;
# sets SERVER_PORT. Stopped at exit.
run_python_server() {
    local name=$1 script=$2 i
    shift 2
    local portfile=$TEST_DIR/$name.port
    python3 "$FACTORY_SOURCE_DIR/tests/data/$script" "$portfile" "$@" >"$TEST_DIR/$name.log" 2>&1 &
    local pid=$!
    _lib_on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    for i in $(seq 1 100); do
        if [[ -s $portfile ]]; then
            SERVER_PORT=$(cat "$portfile")
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || fail "$name died: $(tail -n 5 "$TEST_DIR/$name.log")"
        sleep 0.1
    done
    fail "$name did not start"
}

# run_fault_proxy: tests/data/registry_fault_proxy.py in front of $REGISTRY, with no rule yet;
# sets P (its host:port) and RULES (the rules file: write JSON there). Each request it sees is
# logged to $TEST_DIR/proxy.requests.
run_fault_proxy() {
    RULES=$TEST_DIR/rules.json
    echo '[]' >"$RULES"
    run_python_server proxy registry_fault_proxy.py "$REGISTRY" "$RULES" "$TEST_DIR/proxy.requests"
    P=127.0.0.1:$SERVER_PORT
}

# The hello image in the store; sets HELLO (its manifest digest).
build_hello() {
    HELLO=$(build "$FACTORY_SOURCE_DIR/recipes/hello.toml")
}

# agent NAME: a CI agent of the registry-cache tests, with its own store and HOME.
agent() {
    export FACTORY_CACHE=$TEST_DIR/$1/store HOME=$TEST_DIR/$1/home
    mkdir -p "$HOME"
}

# built ARGS…: a build that must succeed; its digest in DIGEST, its stderr in ERR (unlike
# `DIGEST=$(build …)`, whose ERR stays in the subshell).
built() {
    expect_ok build "$@"
    DIGEST=$(last_line)
    DIGEST=${DIGEST##* }
}
