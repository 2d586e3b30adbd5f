# download steps against a python3 HTTP server on 127.0.0.1 (tests/data/http-server.py): a
# file verified by sha256 with its mode, an archive extracted, a wrong digest (exit 1, both
# digests printed, nothing stored), an archive with "../" entries or an entry under its own
# symlink refused with nothing written outside (errors name the URL), a URL without the file
# name a dest ending in '/' needs (a recipe error), the URL's server gone: cached by digest,
# --offline too.
source "$(dirname "$0")/../lib.sh"
need python3 jq timeout tar cc

www=$TEST_DIR/www
mkdir -p "$www/pkg/bin"
printf '#!/bin/sh\necho tool\n' >"$www/tool"
printf 'sdk\n' >"$www/pkg/README"
printf '#!/bin/sh\n' >"$www/pkg/bin/sdk"
chmod 755 "$www/pkg/bin/sdk"
tar -C "$www" -czf "$www/sdk.tar.gz" pkg
python3 - "$www/evil.tar" <<'PY'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w")
for name, data in (("ok", b"ok"), ("../../escaped", b"evil")):
    i = tarfile.TarInfo(name)
    i.size = len(data)
    t.addfile(i, io.BytesIO(data))
t.close()
PY
python3 - "$www/link.tar" <<'PY'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w")
i = tarfile.TarInfo("lnk")
i.type, i.linkname = tarfile.SYMTYPE, "/etc"
t.addfile(i)
i = tarfile.TarInfo("lnk/passwd")
i.size = 4
t.addfile(i, io.BytesIO(b"evil"))
t.close()
PY
sha() { sha256sum "$1" | cut -c1-64; }

start_http_server "$www" 300
base=http://127.0.0.1:$HTTP_PORT

ctx=$TEST_DIR/ctx
mkdir -p "$ctx"
write "$ctx/recipe.toml" <<TOML
[image]
name = "downloads"

[[step]]
download = { url = "$base/tool", sha256 = "$(sha "$www/tool")", dest = "/usr/local/bin/tool", mode = "0755" }

[[step]]
download = { url = "$base/sdk.tar.gz", sha256 = "$(sha "$www/sdk.tar.gz")", dest = "/opt/sdk", extract = true }
TOML

step "a libcurl without its functions: the download says so, exits non-zero, stores nothing"
# factory loads libcurl.so.4 on first use; a library of that name that lacks curl's functions
# (first on LD_LIBRARY_PATH) must be an error naming what is missing, not a crash.
mkdir -p "$TEST_DIR/fakecurl"
cc -shared -fPIC -x c -o "$TEST_DIR/fakecurl/libcurl.so.4" /dev/null
RC=0
LD_LIBRARY_PATH=$TEST_DIR/fakecurl "$FACTORY" build "$ctx/recipe.toml" >"$TEST_DIR/last.stdout" \
    2>"$TEST_DIR/last.stderr" || RC=$?
((RC != 0 && RC < 128)) || fail "with a fake libcurl factory exited $RC"$'\n'"$(cat "$TEST_DIR/last.stderr")"
assert_contains "$(error_line)" "cannot load libcurl: libcurl.so.4 has no curl_global_init" \
    "the error names the missing function"
assert_missing "$FACTORY_CACHE/downloads/$(sha "$www/tool")"

step "a file with its mode and an extracted archive"
expect_ok build "$ctx/recipe.toml" -o "rootfs:$TEST_DIR/rootfs"
first=$(last_line)
assert_eq "$(cat "$www/tool")" "$(cat "$TEST_DIR/rootfs/usr/local/bin/tool")" "downloaded file"
assert_eq "755" "$(stat -c %a "$TEST_DIR/rootfs/usr/local/bin/tool")" "mode"
assert_eq "sdk" "$(cat "$TEST_DIR/rootfs/opt/sdk/pkg/README")" "extracted file"
assert_eq "755" "$(stat -c %a "$TEST_DIR/rootfs/opt/sdk/pkg/bin/sdk")" "extracted mode"
assert_exists "$FACTORY_CACHE/downloads/$(sha "$www/tool")"

step "a wrong sha256: exit 1, both digests, nothing stored"
want=$(printf '%064d' 0)
write "$ctx/wrong.toml" <<TOML
[image]
name = "wrong"
[[step]]
download = { url = "$base/tool", sha256 = "$want", dest = "/tool" }
TOML
before=$(ls "$FACTORY_CACHE/downloads" | sort)
expect_exit 1 build "$ctx/wrong.toml"
assert_contains "$(error_line)" "sha256 mismatch: expected sha256:$want, got sha256:$(sha "$www/tool")"
assert_eq "$before" "$(ls -A "$FACTORY_CACHE/downloads" | sort)" "downloads after a wrong digest"

step "an archive with ../ entries: refused, nothing outside"
write "$ctx/evil.toml" <<TOML
[image]
name = "evil"
[[step]]
download = { url = "$base/evil.tar", sha256 = "$(sha "$www/evil.tar")", dest = "/opt/evil", extract = true }
TOML
expect_exit 1 build "$ctx/evil.toml"
# Named by the URL the recipe gave, not by the store's file (its sha256).
assert_eq "factory: error: main 1/1: $base/evil.tar: entry \"../../escaped\": invalid path \"opt/evil/../../escaped\": '.' or '..' component" "$(error_line)"
assert_missing "$TEST_DIR/escaped"
assert_missing "$FACTORY_CACHE/escaped"
[[ -z $(find "$TEST_DIR" -name escaped) ]] || fail "an escaped file: $(find "$TEST_DIR" -name escaped)"

step "an entry under a symlink of the archive, a file that is no archive: refused, named by URL"
write "$ctx/link.toml" <<TOML
[image]
name = "link"
[[step]]
download = { url = "$base/link.tar", sha256 = "$(sha "$www/link.tar")", dest = "/opt/x", extract = true }
TOML
expect_exit 1 build "$ctx/link.toml"
assert_eq "factory: error: main 1/1: $base/link.tar: entry \"opt/x/lnk/passwd\" goes through the symlink \"opt/x/lnk\" (→ /etc), and extracting follows no symlink" "$(error_line)"
write "$ctx/plain.toml" <<TOML
[image]
name = "plain"
[[step]]
download = { url = "$base/tool", sha256 = "$(sha "$www/tool")", dest = "/opt/x", extract = true }
TOML
expect_exit 1 build "$ctx/plain.toml"
assert_match "^factory: error: main 1/1: $base/tool: .*Unrecognized archive format" "$(error_line)"

step "a dest ending in / and a URL without a file name: a recipe error at the url, nothing fetched"
write "$ctx/noname.toml" <<TOML
[image]
name = "noname"
[[step]]
download = { url = "$base/", sha256 = "$(sha "$www/tool")", dest = "/o/" }
TOML
expect_exit 2 build "$ctx/noname.toml"
assert_eq "factory: error: $ctx/noname.toml:4:20: [[step]] download.url: the URL has no file name for dest \"/o/\" to take; end dest with the file's name" "$(error_line)"

step "the server gone: a fresh build from the store's downloads, --offline too, same digest"
kill "$HTTP_PID"
wait "$HTTP_PID" 2>/dev/null || true
rm -rf "$FACTORY_CACHE/actions"
expect_ok build "$ctx/recipe.toml"
assert_eq "$first" "$(last_line)" "rebuilt from the store"
rm -rf "$FACTORY_CACHE/actions"
expect_ok build --offline "$ctx/recipe.toml"
assert_eq "$first" "$(last_line)" "offline"
rm -rf "$FACTORY_CACHE/downloads"
expect_exit 1 build --offline "$ctx/wrong.toml"
assert_contains "$(error_line)" "offline: download $base/tool (sha256:$want) is not in the store"
echo "PASS: $TEST_NAME"
