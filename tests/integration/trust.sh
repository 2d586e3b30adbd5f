# The host's trust store in RUN steps (docs/recipe.md "trust"): mounted read-only at
# /run/factory/host-ca-certificates.crt for the run only, SSL_CERT_FILE & co. pointing at it;
# `trust = "image"` opts out; the image has the same digest whatever bundle the host has, or
# none, and no layer holds the mount point. factory's own fetches (https downloads, git over
# https, registry bases) trust the host's bundle: a CA only it holds works, another fails.
source "$(dirname "$0")/../lib.sh"
need_root
need jq

bb=$(busybox_context)
ctx=$TEST_DIR/ctx
mkdir -p "$ctx"
write "$ctx/recipe.toml" <<TOML
[image]
name = "trust"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "sh", "-c", "if [ -n \"\$SSL_CERT_FILE\" ]; then /bin/busybox grep -q 'BEGIN CERTIFICATE' \"\$SSL_CERT_FILE\" && [ \"\$NODE_EXTRA_CA_CERTS\" = \"\$SSL_CERT_FILE\" ] && [ \"\$GIT_SSL_CAINFO\" = \"\$SSL_CERT_FILE\" ] && [ \"\$PIP_CERT\" = \"\$SSL_CERT_FILE\" ] && [ \"\$REQUESTS_CA_BUNDLE\" = \"\$SSL_CERT_FILE\" ] && ! echo x 2>/dev/null >\"\$SSL_CERT_FILE\" || exit 1; fi; echo done >/done"]

[[step]]
trust = "image"
run = ["/bin/busybox", "sh", "-c", "[ -z \"\$SSL_CERT_FILE\" ] && [ ! -s /run/factory/host-ca-certificates.crt ]"]
TOML

bundle() { # bundle FILE MARKER: a PEM-looking bundle
    printf -- '-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n' "$2" >"$1"
}
bundle "$TEST_DIR/a.pem" FtrustMarkerA9q
bundle "$TEST_DIR/b.pem" FtrustMarkerB3z

step "the host's bundle is seen by the step, read-only, with the variables set"
FACTORY_HOST_CA_BUNDLE=$TEST_DIR/a.pem expect_ok build --cache "$TEST_DIR/s1" --progress plain "$ctx/recipe.toml"
d1=$(last_line)

step "another bundle, or none: the same digest"
FACTORY_HOST_CA_BUNDLE=$TEST_DIR/b.pem expect_ok build --cache "$TEST_DIR/s2" --progress plain "$ctx/recipe.toml"
assert_eq "$d1" "$(last_line)" "digest with another bundle"
FACTORY_HOST_CA_BUNDLE= expect_ok build --cache "$TEST_DIR/s3" --progress plain "$ctx/recipe.toml"
assert_eq "$d1" "$(last_line)" "digest without a bundle"

step "no layer holds the bundle or its mount point"
manifest=${d1##* }
for l in $(jq -r '.layers[].digest' "$(blob "$TEST_DIR/s1" "$manifest")"); do
    listing=$(tar -tzf "$(blob "$TEST_DIR/s1" "$l")")
    assert_not_contains "$listing" "run/factory" "mount point in a layer"
    assert_not_contains "$(tar -xzOf "$(blob "$TEST_DIR/s1" "$l")" 2>/dev/null | grep -a FtrustMarkerA9q || true)" "FtrustMarkerA9q" "bundle in a layer"
done
if grep -rlIa FtrustMarkerA9q "$TEST_DIR/s1/actions" >/dev/null 2>&1; then fail "the bundle is in a record"; fi

step "the step sees the host's bundle itself (a check that fails with another one)"
sed -i "s|grep -q 'BEGIN CERTIFICATE'|grep -q 'FtrustMarkerA9q'|" "$ctx/recipe.toml"
FACTORY_HOST_CA_BUNDLE=$TEST_DIR/a.pem expect_ok build --cache "$TEST_DIR/s4" --progress plain "$ctx/recipe.toml"
FACTORY_HOST_CA_BUNDLE=$TEST_DIR/b.pem expect_exit 1 build --cache "$TEST_DIR/s5" --progress plain "$ctx/recipe.toml"
step "factory's own fetches use the host's trust store: https downloads, git and registry bases"
need openssl git docker-registry skopeo
source "$FACTORY_SOURCE_DIR/tests/registry_lib.sh"
pki=$TEST_DIR/pki
mkdir -p "$pki"
for ca in ca other; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=factory test $ca" \
        -keyout "$pki/$ca.key" -out "$pki/$ca.pem" 2>/dev/null
done
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$pki/server.key" \
    -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/san.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/san.ext" -out "$pki/server.pem" 2>/dev/null
www=$TEST_DIR/www
mkdir -p "$www"
echo "fetched over TLS" >"$www/file.txt"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
git init -q -b main "$TEST_DIR/repo"
echo repo >"$TEST_DIR/repo/README"
git -C "$TEST_DIR/repo" add -A
git -C "$TEST_DIR/repo" -c user.name=t -c user.email=t@example.com commit -q -m one
git clone -q --bare "$TEST_DIR/repo" "$www/repo.git"
git -C "$www/repo.git" update-server-info # served as files: git's dumb HTTP protocol
# An https file server on 127.0.0.1, certificate signed by ca.pem; bounded in time.
timeout 300 python3 - "$www" "$pki/server.pem" "$pki/server.key" "$TEST_DIR/https.port" <<'PY' &
import functools, http.server, ssl, sys
root, cert, key, portfile = sys.argv[1:5]
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = functools.partial(Quiet, directory=root)
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(httpd.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
httpd.serve_forever()
PY
https_pid=$!
_lib_on_exit "kill $https_pid 2>/dev/null"
for _ in $(seq 1 100); do [[ -s $TEST_DIR/https.port ]] && break; sleep 0.1; done
https=https://127.0.0.1:$(cat "$TEST_DIR/https.port")
run_registry tls "" "  tls:
    certificate: $pki/server.pem
    key: $pki/server.key" https
expect_ok build --cache "$TEST_DIR/s6" "$FACTORY_SOURCE_DIR/recipes/hello.toml"
expect_ok export --cache "$TEST_DIR/s6" hello:latest "oci:$TEST_DIR/hello-oci:h"
skopeo copy -q --dest-tls-verify=false "oci:$TEST_DIR/hello-oci:h" "docker://$REGISTRY/base/hello:1" >/dev/null
download_step="[[step]]
download = { url = \"$https/file.txt\", sha256 = \"$(sha256sum "$www/file.txt" | cut -c1-64)\", dest = \"/file.txt\" }"
git_step="[[step]]
git = { url = \"$https/repo.git\", ref = \"main\", dest = \"/repo\" }"
fetch_recipe() { # fetch_recipe TOML...: an image on the registry base, or none, and the steps
    local IFS=$'\n'
    printf '[image]\nname = "fetch"\n\n%s\n' "$*" >"$ctx/fetch.toml"
}
fetch_recipe "[base]
image = \"$REGISTRY/base/hello:1\"" "$download_step" "$git_step"
FACTORY_HOST_CA_BUNDLE=$pki/ca.pem expect_ok build --cache "$TEST_DIR/s7" --progress plain "$ctx/fetch.toml"
step "with a trust store lacking the CA, each fetch fails on the certificate"
FACTORY_HOST_CA_BUNDLE=$pki/other.pem expect_exit 1 build --cache "$TEST_DIR/s8" "$ctx/fetch.toml"
assert_contains "$(error_line)" "base $REGISTRY/base/hello:1" "the registry base trusted another CA"
fetch_recipe "$download_step"
FACTORY_HOST_CA_BUNDLE=$pki/other.pem expect_exit 1 build --cache "$TEST_DIR/s9" "$ctx/fetch.toml"
assert_contains "$(error_line)" "$https/file.txt" "the download trusted another CA"
fetch_recipe "$git_step"
FACTORY_HOST_CA_BUNDLE=$pki/other.pem expect_exit 1 build --cache "$TEST_DIR/s10" "$ctx/fetch.toml"
assert_contains "$(error_line)" "$https/repo.git" "the git fetch trusted another CA"
FACTORY_HOST_CA_BUNDLE=$pki/ca.pem expect_ok build --cache "$TEST_DIR/s10" "$ctx/fetch.toml"
echo "PASS: $TEST_NAME"
