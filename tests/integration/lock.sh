# factory lock and build --locked against real peers on 127.0.0.1: a registry base
# (docker-registry), two git steps (git daemon) and a download (tests/data/http-server.py).
# The lock file is exact and byte-identical when written twice; a new upstream commit rebuilds
# the git step without --locked while --locked builds the old digest, and `factory lock` keeps
# the pin but names it with the command that moves it; a lock that no longer
# matches the recipe names each drifted item, with the files named as the command line named
# the recipe; a hand-edited pin that is not valid is located (exit 2), one whose commit the
# remote lacks is named as the lock file's by build and lock; `lock --update NAME` moves
# exactly that pin; with
# every server stopped, `--offline --locked` rebuilds the same digest from the store, and a
# store without the pins' content is an error naming what is missing.
source "$(dirname "$0")/../lib.sh"
need git python3 jq timeout skopeo cmp

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
export GIT_AUTHOR_DATE=2020-01-01T00:00:00Z GIT_COMMITTER_DATE=2020-01-01T00:00:00Z

srv=$TEST_DIR/srv
work=$TEST_DIR/work
mkdir -p "$srv/git-repos" "$srv/www"
commit() { # commit REPO TEXT: one commit on main, pushed
    echo "$2" >"$work/$1/README"
    git -C "$work/$1" add -A
    git -C "$work/$1" commit -q -m "$2"
    git -C "$work/$1" push -q origin HEAD:main
}
new_repo() {
    git init -q --bare -b main "$srv/git-repos/$1.git"
    git clone -q "$srv/git-repos/$1.git" "$work/$1" 2>/dev/null
    git -C "$work/$1" checkout -q -b main
}
new_repo app
commit app "app one"
new_repo lib
commit lib "lib one"
app1=$(git -C "$work/app" rev-parse HEAD)
lib1=$(git -C "$work/lib" rev-parse HEAD)
printf '#!/bin/sh\necho tool\n' >"$srv/www/tool"
tool_sha=$(sha256sum "$srv/www/tool" | cut -c1-64)

start_git_daemon "$srv/git-repos" 900
port=$GIT_PORT
start_http_server "$srv/www" 900
www=http://127.0.0.1:$HTTP_PORT
git_url=git://127.0.0.1:$port

step "a registry base: hello, copied to docker-registry"
export FACTORY_CACHE=$TEST_DIR/store
build "$FACTORY_SOURCE_DIR/recipes/hello.toml" >/dev/null
start_registry
expect_ok export hello:latest "oci:$TEST_DIR/hello-oci:h"
skopeo copy -q --format v2s2 --dest-tls-verify=false "oci:$TEST_DIR/hello-oci:h" "docker://$REGISTRY/base/hello:1" >/dev/null
base_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/base/hello:1")

ctx=$TEST_DIR/ctx
r=$ctx/app.toml
# recipe [APP_REF [EXTRA_STEP]]
recipe() {
    write "$r" <<TOML
[image]
name = "locked"

[base]
image = "$REGISTRY/base/hello:1"

[[step]]
git = { url = "$git_url/app.git", ref = "${1:-main}", dest = "/src/app" }

[[step]]
git = { url = "$git_url/lib.git", ref = "main", dest = "/src/lib" }

[[step]]
download = { url = "$www/tool", sha256 = "$tool_sha", dest = "/usr/local/bin/tool", mode = "0755" }
${2:-}
TOML
}
recipe
opts=(--tls-verify=false)

step "factory lock writes the exact lock file"
expect_ok lock "${opts[@]}" "$r"
assert_exists "$r.lock"
expected="# Pins of app.toml for \`factory build --locked\` (docs/lockfile.md).
# Written by \`factory lock\`; move one with \`factory lock --update NAME\`.

[main.base]
kind = \"registry\"
digest = \"$base_digest\"
reference = \"$REGISTRY/base/hello:1\"

[main.1]
kind = \"git\"
commit = \"$app1\"
name = \"refs/heads/main\"
ref = \"main\"
url = \"$git_url/app.git\"

[main.2]
kind = \"git\"
commit = \"$lib1\"
name = \"refs/heads/main\"
ref = \"main\"
url = \"$git_url/lib.git\"

[main.3]
kind = \"download\"
sha256 = \"$tool_sha\"
url = \"$www/tool\""
assert_eq "$expected" "$(cat "$r.lock")" "lock file text"
assert_contains "$OUT" "main.1: git $git_url/app.git main: added"

step "written twice, byte-identical"
cp "$r.lock" "$TEST_DIR/lock.1"
expect_ok lock "${opts[@]}" "$r"
cmp "$TEST_DIR/lock.1" "$r.lock" || fail "lock file changed when written again"
assert_eq "$r.lock: 4 pins, unchanged" "$OUT" "second lock's output"
expect_ok lock "${opts[@]}" --update "$r"
cmp "$TEST_DIR/lock.1" "$r.lock" || fail "lock --update with nothing moved changed the file"

step "one pin is '1 pin'"
write "$ctx/one.toml" <<TOML
[image]
name = "one"

[[step]]
download = { url = "$www/tool", sha256 = "$tool_sha", dest = "/tool" }
TOML
expect_ok lock "$ctx/one.toml"
assert_eq "$ctx/one.toml.lock: 1 pin" "$(last_line)" "one pin, singular"

step "--locked builds what the lock pins, the same as an unlocked build"
locked1=$(build "${opts[@]}" --locked "$r")
assert_eq "$locked1" "$(build "${opts[@]}" "$r")" "locked = unlocked while nothing moved"

step "a new upstream commit: rebuilt without --locked, ignored with it"
commit app "app two"
commit lib "lib two"
app2=$(git -C "$work/app" rev-parse HEAD)
lib2=$(git -C "$work/lib" rev-parse HEAD)
moved=$(build "${opts[@]}" --progress plain "$r")
assert_ne "$locked1" "$moved" "an unlocked build follows main"
assert_contains "$(cat "$TEST_DIR/last.stderr")" "[main 1/3] done" "the git step rebuilt"
assert_eq "$locked1" "$(build "${opts[@]}" --locked "$r")" "--locked builds the old digest"
# The pinned commit is used as it is: the daemon is not asked (no ls-remote), so a repository
# gone from the server changes nothing.
mv "$srv/git-repos/app.git" "$srv/app.git.away"
assert_eq "$locked1" "$(build "${opts[@]}" --locked "$r")" "--locked without the repository"
mv "$srv/app.git.away" "$srv/git-repos/app.git"

step "a lock that no longer matches the recipe: each drifted item, exit 1"
recipe v2 "[[step]]
download = { url = \"$www/tool\", sha256 = \"$tool_sha\", dest = \"/opt/tool\" }"
expect_exit 1 build "${opts[@]}" --locked "$r"
assert_contains "$ERR" "factory: error: $r.lock does not match the recipe (factory lock $r brings it up to date):
  main.1: git $git_url/app.git main: ref main → v2
  main.4: download $www/tool: not in the lock file" "drift message"
assert_eq 2 "$(grep -c "^  " "$TEST_DIR/last.stderr")" "one line per drifted item, no more"
recipe main
sed -i 's/^sha256 = .*/sha256 = "'"$(printf '%064d' 0)"'"/' "$r.lock"
expect_exit 1 build "${opts[@]}" --locked "$r"
assert_contains "$ERR" "  main.3: download $www/tool: sha256 $(printf '%064d' 0) → $tool_sha" "sha256 drift"
cp "$TEST_DIR/lock.1" "$r.lock"
mv "$r.lock" "$TEST_DIR/lock.moved"
expect_exit 2 build "${opts[@]}" --locked "$r"
assert_eq "factory: error: $r.lock: no lock file (run factory lock $r)" "$(error_line)"
mv "$TEST_DIR/lock.moved" "$r.lock"

step "a hand-edited pin: an invalid one is located (exit 2), a missing commit is named as the pin"
# From the recipe's directory: every message names the files as the command line did.
cd "$ctx"
sed "s/^commit = \"$app1\"/commit = \"nothex\"/" "$TEST_DIR/lock.1" >app.toml.lock
at=$(grep -n '^commit = "nothex"' app.toml.lock | cut -d: -f1)
invalid="factory: error: app.toml.lock:$at:10: main.1.commit: 'nothex' is not a commit id (40 lower-case hex digits); correct it, or delete [main.1] and run factory lock to pin it again"
expect_exit 2 lock "${opts[@]}" --offline app.toml
assert_eq "$invalid" "$(error_line)" "lock refuses an invalid pin"
expect_exit 2 build "${opts[@]}" --locked app.toml
assert_eq "$invalid" "$(error_line)" "build --locked refuses it the same way"
gone=$(printf 'f%.0s' {1..40})
sed "s/^commit = \"$app1\"/commit = \"$gone\"/" "$TEST_DIR/lock.1" >app.toml.lock
expect_exit 1 build "${opts[@]}" --locked app.toml
assert_eq "factory: error: main 1/3: commit $gone not found in $git_url/app.git: it is the pin main.1 of app.toml.lock (factory lock --update main.1 app.toml pins what main names now)" "$(error_line)" "a pinned commit the remote lacks"
assert_not_contains "$ERR" "trying again" "a commit the server lacks is not asked for again"
expect_ok lock "${opts[@]}" app.toml
assert_eq "main.1: git $git_url/app.git main: the pinned commit ${gone:0:12} is not in the repository (main is at ${app2:0:12}); factory lock --update main.1 app.toml pins that
main.2: git $git_url/lib.git main: moved upstream ${lib1:0:12} → ${lib2:0:12}, kept (factory lock --update main.2 app.toml moves it)
app.toml.lock: 4 pins, unchanged" "$OUT" "lock names the missing commit, not a move"
cp "$TEST_DIR/lock.1" app.toml.lock
recipe v2
expect_exit 1 build "${opts[@]}" --locked app.toml
assert_contains "$ERR" "factory: error: app.toml.lock does not match the recipe (factory lock app.toml brings it up to date):
  main.1: git $git_url/app.git main: ref main → v2" "the drift header, relative"
recipe main
cp app.toml nolock.toml
expect_exit 2 build "${opts[@]}" --locked nolock.toml
assert_eq "factory: error: nolock.toml.lock: no lock file (run factory lock nolock.toml)" "$(error_line)"
rm nolock.toml
cd - >/dev/null

step "lock without --update keeps moved pins and names each with the command that moves it"
expect_ok lock "${opts[@]}" "$r"
assert_eq "main.1: git $git_url/app.git main: moved upstream ${app1:0:12} → ${app2:0:12}, kept (factory lock --update main.1 $r moves it)
main.2: git $git_url/lib.git main: moved upstream ${lib1:0:12} → ${lib2:0:12}, kept (factory lock --update main.2 $r moves it)
$r.lock: 4 pins, unchanged" "$OUT" "lock's notice of moved branches"
cmp "$TEST_DIR/lock.1" "$r.lock" || fail "lock without --update moved a pin"
expect_ok lock "${opts[@]}" --offline "$r"
assert_eq "$r.lock: 4 pins, unchanged" "$OUT" "--offline: no ls-remote, no notice"

step "a registry tag that moved is named the same way, and kept"
# The same image pushed as an OCI manifest: the tag now names another manifest digest.
skopeo copy -q --format oci --dest-tls-verify=false "oci:$TEST_DIR/hello-oci:h" "docker://$REGISTRY/base/hello:1" >/dev/null
oci_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/base/hello:1")
assert_ne "$base_digest" "$oci_digest" "the tag names another manifest"
expect_ok lock "${opts[@]}" "$r"
assert_eq "main.base: registry $REGISTRY/base/hello:1: moved upstream ${base_digest:0:19} → ${oci_digest:0:19}, kept (factory lock --update main.base $r moves it)" "$(head -n1 <<<"$OUT")" "lock's notice of a moved tag"
cmp "$TEST_DIR/lock.1" "$r.lock" || fail "lock without --update moved the registry pin"
expect_ok lock "${opts[@]}" --offline "$r"
assert_eq "$r.lock: 4 pins, unchanged" "$OUT" "--offline: no registry request, no notice"
skopeo copy -q --format v2s2 --dest-tls-verify=false "oci:$TEST_DIR/hello-oci:h" "docker://$REGISTRY/base/hello:1" >/dev/null
assert_eq "$base_digest" "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/base/hello:1")" "the tag back where the lock pins it"

step "lock --update NAME moves exactly that pin"
expect_exit 2 lock "${opts[@]}" --update main.9 "$r"
assert_contains "$(error_line)" "--update main.9: no pinned step of $r is named so"
cmp "$TEST_DIR/lock.1" "$r.lock" || fail "a failed --update changed the lock file"
expect_ok lock "${opts[@]}" --update main.1 "$r"
assert_eq "main.1: git $git_url/app.git main: ${app1:0:12} → ${app2:0:12}
main.2: git $git_url/lib.git main: moved upstream ${lib1:0:12} → ${lib2:0:12}, kept (factory lock --update main.2 $r moves it)
$r.lock: 4 pins" "$OUT" "lock --update main.1 output"
assert_eq "< commit = \"$app1\"
---
> commit = \"$app2\"" "$(diff "$TEST_DIR/lock.1" "$r.lock" | grep -v '^[0-9]')" "only main.1 moved"
expect_ok lock "${opts[@]}" --update "$git_url/lib.git" "$r"
assert_eq "main.2: git $git_url/lib.git main: ${lib1:0:12} → ${lib2:0:12}
$r.lock: 4 pins" "$OUT" "lock --update URL output"
locked2=$(build "${opts[@]}" --locked "$r")
assert_eq "$moved" "$locked2" "the moved pins build what main builds"

step "--offline --locked with every server stopped: the same digest, rebuilt from the store"
kill "$GIT_DAEMON_PID" "$HTTP_PID" "$REGISTRY_PID" 2>/dev/null
wait "$GIT_DAEMON_PID" "$HTTP_PID" "$REGISTRY_PID" 2>/dev/null || true
rm -rf "$FACTORY_CACHE/actions" # every step made again: from the mirrors, downloads and blobs
assert_eq "$locked2" "$(build --offline --locked --progress plain "$r")" "offline locked digest"
assert_contains "$(cat "$TEST_DIR/last.stderr")" "[main 1/3] done" "the git step was made again"
assert_eq "$locked2" "$(build --offline "$r")" "--offline alone: the store's refs"
expect_exit 2 build --offline -o "docker://$REGISTRY/out:1" "$r"
assert_eq "factory: error: -o docker://$REGISTRY/out:1: --offline allows no push to a registry" "$(error_line)"

step "--offline with a store lacking the pins: an error naming what is missing"
export FACTORY_CACHE=$TEST_DIR/empty
expect_exit 1 build --offline --locked "$r"
assert_contains "$(error_line)" "base $REGISTRY/base/hello:1: offline: the locked manifest $base_digest is not in the store"
expect_exit 1 build --offline "$r"
assert_contains "$(error_line)" "base $REGISTRY/base/hello:1: offline: the image is not in the store"

step "cache prune keeps the mirrors and downloads records name, removes the others"
export FACTORY_CACHE=$TEST_DIR/store
app_hash=$(printf '%s' "$git_url/app.git" | sha256sum | cut -c1-64)
app_mirror=git/$app_hash.git
assert_exists "$FACTORY_CACHE/$app_mirror/HEAD"
assert_exists "$FACTORY_CACHE/downloads/$tool_sha"
expect_ok cache prune --older-than 1d
assert_not_contains "$OUT" "removed mirror" "a mirror a record uses was pruned"
assert_not_contains "$OUT" "removed download" "a download a record uses was pruned"
assert_exists "$FACTORY_CACHE/$app_mirror/HEAD"
assert_exists "$FACTORY_CACHE/downloads/$tool_sha"
rm -rf "$FACTORY_CACHE/actions" # no record uses them any more
expect_ok cache prune --older-than 2d
assert_exists "$FACTORY_CACHE/$app_mirror/HEAD" # fetched minutes ago
touch -d '3 days ago' "$FACTORY_CACHE/$app_mirror" "$FACTORY_CACHE/$app_mirror/FETCH_HEAD" \
    "$FACTORY_CACHE/downloads/$tool_sha"
expect_ok cache prune --older-than 2d --dry-run
assert_contains "$OUT" "would remove mirror     ${app_hash:0:14}"
assert_exists "$FACTORY_CACHE/$app_mirror/HEAD"
expect_ok cache prune --older-than 2d
assert_contains "$OUT" "removed mirror     ${app_hash:0:14}"
assert_contains "$OUT" "removed download   ${tool_sha:0:14}"
assert_missing "$FACTORY_CACHE/$app_mirror"
assert_missing "$FACTORY_CACHE/${app_mirror%.git}.blobs"
assert_missing "$FACTORY_CACHE/downloads/$tool_sha"
assert_exists "$FACTORY_CACHE/git/$(printf '%s' "$git_url/lib.git" | sha256sum | cut -c1-64).git/HEAD"
expect_ok cache prune
assert_missing "$FACTORY_CACHE/git/$(printf '%s' "$git_url/lib.git" | sha256sum | cut -c1-64).git"
echo "PASS: $TEST_NAME"
