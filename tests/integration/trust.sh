# The host's trust store in RUN steps (docs/recipe.md "trust"): mounted read-only at
# /run/factory/host-ca-certificates.crt for the run only, SSL_CERT_FILE & co. pointing at it;
# `trust = "image"` opts out; the image has the same digest whatever bundle the host has, or
# none, and no layer holds the mount point.
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
echo "PASS: $TEST_NAME"
