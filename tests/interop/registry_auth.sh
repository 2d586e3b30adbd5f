# Registries that want something: TLS with a CA made here, htpasswd Basic auth, and token auth
# (a small token server); factory login/logout and the auth files podman and docker write; no
# credential to another host (a redirect, a token realm elsewhere), no secret in any output.
source "$(dirname "$0")/../lib.sh"
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
need skopeo openssl htpasswd jq python3
build_hello
secret='s3cret-PaSS'

step "TLS: a CA and a certificate for 127.0.0.1, made with openssl"
pki=$TEST_DIR/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=factory-test-ca \
    -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$pki/server.key" \
    -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/ext" -out "$pki/server.pem" 2>/dev/null
run_registry tls "" "  tls:
    certificate: $pki/server.pem
    key: $pki/server.key" https
expect_exit 1 push hello:latest "$REGISTRY/t/hello:v1"
assert_match "^factory: error: registry $REGISTRY: GET /v2/: .*(certificate|SSL)" "$(error_line)" \
    "an unknown CA is refused, not retried"
assert_not_contains "$ERR" "attempt 2" "a certificate error is not retried"
expect_ok push --tls-ca "$pki/ca.pem" hello:latest "$REGISTRY/t/hello:v1"
assert_eq "docker://$REGISTRY/t/hello:v1 $HELLO" "$(last_line)" "push over TLS with --tls-ca"
assert_eq "$HELLO" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/t/hello:v1")" \
    "skopeo reads it over TLS"
FACTORY_CACHE=$TEST_DIR/tls-store expect_ok pull --tls-ca "$pki/ca.pem" "$REGISTRY/t/hello:v1"
assert_eq "$REGISTRY/t/hello:v1 $HELLO" "$(last_line)" "pull over TLS"
expect_exit 2 pull --tls-ca "$TEST_DIR/nope.pem" "$REGISTRY/t/hello:v1"
assert_contains "$(error_line)" "--tls-ca $TEST_DIR/nope.pem: no such file" "missing CA file"

step "htpasswd Basic auth"
htpasswd -Bbn alice "$secret" >"$TEST_DIR/htpasswd"
run_registry basic "auth:
  htpasswd:
    realm: factory-test
    path: $TEST_DIR/htpasswd"
B=$REGISTRY
expect_exit 1 push --tls-verify=false hello:latest "$B/t/hello:v1"
assert_eq "factory: error: registry $B: repository t/hello: HEAD manifest v1: HTTP 401; no credentials found for $B; log in with \`factory login $B\`" \
    "$(error_line)" "anonymous push names the request, and that there were no credentials"
run_factory login --tls-verify=false -u alice --password-stdin "$B" <<<"wrong"
assert_eq 1 "$RC" "a wrong password fails the login"
assert_missing "$HOME/.config/factory/auth.json"
expect_ok login --tls-verify=false -u alice --password-stdin "$B" <<<"$secret"
assert_contains "$OUT" "Login succeeded: $B" "login"
assert_eq 600 "$(stat -c %a "$HOME/.config/factory/auth.json")" "the login file is 0600"
expect_ok push --tls-verify=false --progress plain hello:latest "$B/t/hello:v1"
assert_eq "docker://$B/t/hello:v1 $HELLO" "$(last_line)" "push with the saved login"
FACTORY_CACHE=$TEST_DIR/basic-store expect_ok pull --tls-verify=false "$B/t/hello:v1"
assert_eq "$B/t/hello:v1 $HELLO" "$(last_line)" "pull with Basic"
expect_ok logout "$B"
expect_exit 1 logout "$B"
assert_contains "$(error_line)" "not logged in to $B" "second logout"
step "podman's auth file is read when factory has none"
mkdir -p "$HOME/.config/containers"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$B" "$(printf 'alice:%s' "$secret" | base64 -w0)" \
    >"$HOME/.config/containers/auth.json"
FACTORY_CACHE=$TEST_DIR/basic-store2 expect_ok pull --tls-verify=false "$B/t/hello:v1"
rm "$HOME/.config/containers/auth.json"

step "a redirect to another host gets no credentials"
# The proxy wants Basic credentials on 127.0.0.1 and redirects blob requests to localhost (the
# same proxy, another origin), in front of an open registry.
run_registry plain
expect_ok push --tls-verify=false hello:latest "$REGISTRY/t/hello:v1"
printf '[{"match": "^127.0.0.1:[0-9]+ GET /v2/t/hello/blobs/", "fault": "redirect", "times": -1},
         {"match": "^127.0.0.1:", "fault": "basic", "times": -1}]' >"$TEST_DIR/rules.json"
run_python_server proxy registry_fault_proxy.py "$REGISTRY" "$TEST_DIR/rules.json" "$TEST_DIR/proxy.requests"
P=127.0.0.1:$SERVER_PORT
mkdir -p "$HOME/.docker"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$P" "$(printf 'alice:%s' "$secret" | base64 -w0)" \
    >"$HOME/.docker/config.json"
FACTORY_CACHE=$TEST_DIR/redirect-store expect_ok pull --tls-verify=false "$P/t/hello:v1"
assert_eq "$P/t/hello:v1 $HELLO" "$(last_line)" "pull through redirects"
grep -q "^$P GET /v2/t/hello/manifests/v1 auth=yes" "$TEST_DIR/proxy.requests" ||
    fail "the manifest request carried no credentials: $(cat "$TEST_DIR/proxy.requests")"
grep -q "^localhost:$SERVER_PORT GET /v2/t/hello/blobs/.* auth=no" "$TEST_DIR/proxy.requests" ||
    fail "no request at the other origin: $(cat "$TEST_DIR/proxy.requests")"
if grep -q "^localhost:.* auth=yes" "$TEST_DIR/proxy.requests"; then
    fail "credentials went to another host: $(grep '^localhost' "$TEST_DIR/proxy.requests")"
fi
rm "$HOME/.docker/config.json"

step "token auth: a token server, Basic credentials to it, Bearer tokens to the registry"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=factory-token \
    -keyout "$pki/token.key" -out "$pki/token.pem" 2>/dev/null
run_python_server tokens registry_token_server.py "$pki/token.key" "$pki/token.pem" \
    "alice:$secret" factory-registry "$TEST_DIR/token.requests"
T_PORT=$SERVER_PORT
run_registry token "auth:
  token:
    realm: http://127.0.0.1:$T_PORT/token
    service: factory-registry
    issuer: factory-test
    rootcertbundle: $pki/token.pem"
K=$REGISTRY
expect_exit 1 push --tls-verify=false hello:latest "$K/t/hello:v1"
assert_contains "$(error_line)" "registry $K: repository t/hello:" "anonymous token push fails"
assert_contains "$(error_line)" "HTTP 401" "with the status"
assert_contains "$(error_line)" "; no credentials found for $K; log in with \`factory login $K\`" \
    "and that no credentials were found"
expect_ok login --tls-verify=false -u alice --password-stdin "$K" <<<"$secret"
expect_ok push --tls-verify=false hello:latest "$K/t/hello:v1"
assert_eq "docker://$K/t/hello:v1 $HELLO" "$(last_line)" "push with tokens"
grep -q "scope=repository:t/hello:pull,push auth=yes" "$TEST_DIR/token.requests" ||
    fail "no push token was asked for: $(cat "$TEST_DIR/token.requests")"
assert_eq 1 "$(grep -c 'scope=repository:t/hello:pull,push auth=yes' "$TEST_DIR/token.requests")" \
    "one token per scope, cached for the whole push"
expect_ok logout "$K"
FACTORY_CACHE=$TEST_DIR/token-store expect_ok pull --tls-verify=false "$K/t/hello:v1"
assert_eq "$K/t/hello:v1 $HELLO" "$(last_line)" "anonymous pull with a pull-only token"
assert_eq "$HELLO" "$(skopeo inspect --tls-verify=false --creds "alice:$secret" --format '{{.Digest}}' "docker://$K/t/hello:v1")" \
    "skopeo reads it through the token server"

step "a token the registry refuses: the error names where the credentials came from"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=factory-other \
    -keyout "$pki/other.key" -out "$pki/other.pem" 2>/dev/null
run_registry token-untrusted "auth:
  token:
    realm: http://127.0.0.1:$T_PORT/token
    service: factory-registry
    issuer: factory-test
    rootcertbundle: $pki/other.pem"
U=$REGISTRY
expect_ok login --tls-verify=false -u alice --password-stdin "$U" <<<"$secret"
FACTORY_CACHE=$TEST_DIR/untrusted-store expect_exit 1 pull --tls-verify=false "$U/t/hello:v1"
assert_match "^factory: error: registry $U: repository t/hello: GET manifest v1: HTTP 401 \(UNAUTHORIZED: [^)]*\); credentials from $HOME/.config/factory/auth.json refused by the registry$" \
    "$(error_line)" "a registry-side 401 names the credentials' file"
expect_ok logout "$U"

step "a token realm on another host is refused before any credential is sent"
: >"$TEST_DIR/token.requests"
run_registry token-elsewhere "auth:
  token:
    realm: http://localhost:$T_PORT/token
    service: factory-registry
    issuer: factory-test
    rootcertbundle: $pki/token.pem"
mkdir -p "$HOME/.docker"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY" "$(printf 'alice:%s' "$secret" | base64 -w0)" \
    >"$HOME/.docker/config.json"
expect_exit 1 pull --tls-verify=false "$REGISTRY/t/hello:v1"
assert_eq "factory: error: registry $REGISTRY: the token realm is on another host (localhost); factory sends credentials only to the registry's own domain" \
    "$(error_line)" "realm elsewhere"
[[ ! -s $TEST_DIR/token.requests ]] || fail "the realm elsewhere was asked: $(cat "$TEST_DIR/token.requests")"

step "no secret in any output or in the store"
for f in "$TEST_DIR"/last.* "$TEST_DIR"/*.log; do
    if grep -q -- "$secret" "$f"; then fail "the password is in $f"; fi
done
if grep -rqs -- "$secret" "$TEST_DIR"/*store*; then fail "the password is in a store"; fi
echo "PASS: $TEST_NAME"
