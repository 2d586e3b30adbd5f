# The per-registry configuration file (registries.toml): a CA for one TLS registry only, plain
# HTTP for the hosts listed insecure only, the flags over the file, and errors at FILE:LINE:COL.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need skopeo openssl jq
export XDG_CONFIG_HOME=$HOME/.config
unset FACTORY_REGISTRIES_CONF
conf=$XDG_CONFIG_HOME/factory/registries.toml
mkdir -p "$(dirname "$conf")"
build_hello

step "two TLS registries with a CA made by openssl, one plain registry"
pki=$TEST_DIR/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=factory-test-ca \
    -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$pki/server.key" \
    -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/ext" -out "$pki/server.pem" 2>/dev/null
tls="  tls:
    certificate: $pki/server.pem
    key: $pki/server.key"
run_registry tls1 "" "$tls" https
T1=$REGISTRY
run_registry tls2 "" "$tls" https
T2=$REGISTRY
run_registry plain1
P1=$REGISTRY
run_registry plain2
P2=$REGISTRY

step "without the file: the private CA is unknown"
expect_exit 1 push hello:latest "$T1/t/hello:v1"
assert_match "^factory: error: registry $T1: GET /v2/: .*(certificate|SSL)" "$(error_line)" "no CA, no push"

step "ca = for one host: that host verifies, the other does not get the CA"
mkdir -p "$XDG_CONFIG_HOME/factory/certs"
cp "$pki/ca.pem" "$XDG_CONFIG_HOME/factory/certs/ca.pem"
cat >"$conf" <<TOML
# factory's registries
[[registry]]
location = "$T1"
ca = "certs/ca.pem"

[[registry]]
location = "$P1"
insecure = true
TOML
expect_ok push hello:latest "$T1/t/hello:v1"
assert_eq "docker://$T1/t/hello:v1 $HELLO" "$(last_line)" "push over TLS with the host's ca"
assert_not_contains "$ERR" "TLS verification is off" "a CA is no insecure registry"
FACTORY_CACHE=$TEST_DIR/pulled expect_ok pull "$T1/t/hello:v1"
assert_eq "$T1/t/hello:v1 $HELLO" "$(last_line)" "pull over TLS with the host's ca"
expect_exit 1 push hello:latest "$T2/t/hello:v1"
assert_match "^factory: error: registry $T2: GET /v2/: .*(certificate|SSL)" "$(error_line)" \
    "the CA of $T1 is not used for $T2"
expect_ok push --tls-ca "$pki/ca.pem" hello:latest "$T2/t/hello:v1"
assert_eq "docker://$T2/t/hello:v1 $HELLO" "$(last_line)" "--tls-ca still works for any host"

step "a base by reference on the host with a ca: the build reads the file too"
mkdir -p "$TEST_DIR/based"
cat >"$TEST_DIR/based/based.toml" <<TOML
[image]
name = "based"

[base]
image = "$T1/t/hello:v1"

[config]
cmd = ["/bin/hello"]
TOML
FACTORY_CACHE=$TEST_DIR/based-store expect_ok build --progress plain "$TEST_DIR/based/based.toml"
assert_contains "$ERR" "$T1/t/hello:v1" "the base was resolved over TLS"

step "insecure = true: plain HTTP for the host listed, with a warning naming the file"
expect_ok push hello:latest "$P1/t/hello:v1"
assert_eq "docker://$P1/t/hello:v1 $HELLO" "$(last_line)" "push to the insecure host"
assert_contains "$ERR" "factory: warning: TLS verification is off for $P1 (insecure = true in $conf" \
    "the warning says why"
assert_eq "$HELLO" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$P1/t/hello:v1")" \
    "skopeo reads what went to the insecure host"
expect_exit 1 push hello:latest "$P2/t/hello:v1"
assert_match "^factory: error: registry $P2: GET /v2/: " "$(error_line)" "a host not listed stays TLS-only"
expect_exit 1 push --tls-verify=true hello:latest "$P1/t/hello:v1"
assert_match "^factory: error: registry $P1: GET /v2/: " "$(error_line)" "--tls-verify=true wins over the file"
expect_ok push --tls-verify=false hello:latest "$P2/t/hello:v1"
assert_eq "docker://$P2/t/hello:v1 $HELLO" "$(last_line)" "--tls-verify=false still works"

step "errors in the file: FILE:LINE:COL, exit 2"
printf '[[registry]]\nlocation = "%s"\ninsecure = "yes"\n' "$P1" >"$conf"
expect_exit 2 push hello:latest "$P1/t/hello:v1"
assert_eq "factory: error: $conf:3:12: [[registry]] insecure: expected true or false" "$(error_line)" "a wrong type"
printf '[[registry]]\nlocation = "%s"\nmirror = "x"\n' "$P1" >"$conf"
expect_exit 2 pull "$P1/t/hello:v1"
assert_eq "factory: error: $conf:3:1: [[registry]]: unknown key 'mirror' (known: location, insecure, ca)" \
    "$(error_line)" "an unknown key"
printf '[[registry]]\nlocation = "https://%s/v2"\n' "$P1" >"$conf"
expect_exit 2 push hello:latest "$P1/t/hello:v1"
assert_contains "$(error_line)" "$conf:2:12: [[registry]] location 'https://$P1/v2': expected HOST[:PORT]" "a URL is no location"
printf '[[registry]]\nlocation = "%s"\nca = "nope.pem"\n' "$T1" >"$conf"
expect_exit 2 push hello:latest "$T1/t/hello:v1"
assert_eq "factory: error: $conf:3:6: [[registry]] ca: no such file: $XDG_CONFIG_HOME/factory/nope.pem" \
    "$(error_line)" "a missing CA file"
printf '[[registry]\nlocation = 1\n' >"$conf"
expect_exit 2 push hello:latest "$T1/t/hello:v1"
assert_match "^factory: error: $conf:1:[0-9]+: " "$(error_line)" "a TOML syntax error"
FACTORY_REGISTRIES_CONF=$TEST_DIR/other.toml expect_exit 1 push hello:latest "$P1/t/hello:v1"
assert_match "^factory: error: registry $P1: GET /v2/: " "$(error_line)" \
    "FACTORY_REGISTRIES_CONF names another file (absent: none)"
echo "PASS: $TEST_NAME"
