# git steps against real peers on 127.0.0.1: `git daemon` (git://) and smart HTTP
# (git-http-backend behind tests/data/http-server.py), with repositories made here. A new
# upstream commit rebuilds exactly the git step and what follows; an unmoved branch rebuilds
# nothing; tag and commit refs; a submodule pinned at its commit; keep_git gives a clone where
# `git log`, `git status` and `git pull` work; --offline builds the same digest with the daemon
# gone; credentials reach no file of the store and no output.
source "$(dirname "$0")/../lib.sh"
need git python3 jq timeout

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
export GIT_AUTHOR_DATE=2020-01-01T00:00:00Z GIT_COMMITTER_DATE=2020-01-01T00:00:00Z

srv=$TEST_DIR/srv # served by git daemon, and by http at /git/ (srv is its git-repos)
mkdir -p "$srv/git-repos"
work=$TEST_DIR/work

# commit REPO FILE TEXT: one commit in the working repository REPO, pushed to its bare copy.
commit() {
    echo "$3" >"$work/$1/$2"
    git -C "$work/$1" add -A
    git -C "$work/$1" commit -q -m "$2: $3"
    git -C "$work/$1" push -q origin HEAD:main --tags
}
new_repo() {
    git init -q --bare -b main "$srv/git-repos/$1.git"
    git clone -q "$srv/git-repos/$1.git" "$work/$1" 2>/dev/null
    git -C "$work/$1" checkout -q -b main
}

new_repo app
mkdir -p "$work/app/bin"
printf '#!/bin/sh\necho app\n' >"$work/app/bin/run"
chmod 755 "$work/app/bin/run"
ln -s bin/run "$work/app/run-link"
commit app README "first"
git -C "$work/app" tag -a v1 -m v1
git -C "$work/app" push -q origin v1
v1=$(git -C "$work/app" rev-parse HEAD)

start_git_daemon "$srv/git-repos" 600
port=$GIT_PORT
start_http_server "$srv" 600
hport=$HTTP_PORT

ctx=$TEST_DIR/ctx
mkdir -p "$ctx"
echo before >"$ctx/before.txt"
echo after >"$ctx/after.txt"
# recipe FILE GIT-TABLE: copy, git, copy.
recipe() {
    write "$1" <<TOML
[image]
name = "gitstep"

[[step]]
copy = { src = "before.txt", dest = "/before.txt" }

[[step]]
git = $2

[[step]]
copy = { src = "after.txt", dest = "/after.txt" }
TOML
}

# rebuilt RECIPE [ARGS]: builds it and prints the numbers of the steps that were not cached.
rebuilt() {
    local r=$1
    shift
    expect_ok build --progress plain "$@" "$r"
    { grep -E '^\[main [0-9]+/3\] done ' "$TEST_DIR/last.stderr" || true; } | sed -E 's/^\[main ([0-9]+)\/3\].*/\1/' |
        tr '\n' ' ' | sed 's/ $//'
}

# layer N of the last build's image (1-based), as a file listing "mode path [-> target]".
layer_listing() {
    local manifest digest
    manifest=$(last_line)
    manifest=${manifest##* }
    digest=$(jq -r ".layers[$(($1 - 1))].digest" "$(blob "$FACTORY_CACHE" "$manifest")")
    tar -tvzf "$(blob "$FACTORY_CACHE" "$digest")" | awk '{print $1, $6, $7, $8}'
}
layer_digest_of() {
    local manifest=${1##* }
    jq -r ".layers[$(($2 - 1))].digest" "$(blob "$FACTORY_CACHE" "$manifest")"
}

r=$ctx/branch.toml
recipe "$r" "{ url = \"git://127.0.0.1:$port/app.git\", ref = \"main\", dest = \"/src/app\" }"

step "first build: all three steps; the tree keeps modes and symlinks"
assert_eq "1 2 3" "$(rebuilt "$r")" "first build"
first=$(last_line)
listing=$(layer_listing 2)
assert_contains "$listing" "-rwxr-xr-x src/app/bin/run" "executable mode"
assert_contains "$listing" "-rw-r--r-- src/app/README" "file mode"
assert_contains "$listing" "lrwxrwxrwx src/app/run-link -> bin/run" "symlink"
assert_not_contains "$listing" ".git" "no .git without keep_git"
mirror=$FACTORY_CACHE/git/$(printf '%s' "git://127.0.0.1:$port/app.git" | sha256sum | cut -c1-64).git
assert_exists "$mirror/HEAD"
# The tree needs the tip alone: the branch is fetched at depth 1.
assert_eq "true 1" "$(git --git-dir="$mirror" rev-parse --is-shallow-repository) $(git --git-dir="$mirror" rev-list --count refs/heads/main)" "a shallow mirror"

step "unmoved branch: nothing rebuilt, same digest"
assert_eq "" "$(rebuilt "$r")" "no-op rebuild"
assert_eq "$first" "$(last_line)" "no-op digest"

step "a new upstream commit rebuilds the git step and what follows"
commit app README "second"
head2=$(git -C "$work/app" rev-parse HEAD)
assert_eq "2 3" "$(rebuilt "$r")" "after a new commit"
second=$(last_line)
assert_ne "$first" "$second" "digest after a new commit"
assert_eq "$head2" "$(git --git-dir="$mirror" rev-parse refs/heads/main)" "mirror fetched"
assert_eq "2" "$(git --git-dir="$mirror" rev-list --count refs/heads/main)" "only the new commit fetched"
assert_eq "" "$(rebuilt "$r")" "no-op after the new commit"

step "tag and commit refs pin the same tree as the branch had"
rt=$ctx/tag.toml
recipe "$rt" "{ url = \"git://127.0.0.1:$port/app.git\", ref = \"v1\", dest = \"/src/app\" }"
rebuilt "$rt" >/dev/null
# The history names the ref (created_by), so the layers are compared, not the manifests.
assert_eq "$(layer_digest_of "$first" 2)" "$(layer_digest_of "$(last_line)" 2)" "tag v1 = first build"
rc=$ctx/commit.toml
recipe "$rc" "{ url = \"git://127.0.0.1:$port/app.git\", ref = \"$v1\", dest = \"/src/app\" }"
rebuilt "$rc" >/dev/null
assert_eq "$(layer_digest_of "$first" 2)" "$(layer_digest_of "$(last_line)" 2)" "commit v1 = first build"

step "smart HTTP: the same commit gives the same layer"
rh=$ctx/http.toml
recipe "$rh" "{ url = \"http://127.0.0.1:$hport/git/app.git\", ref = \"main\", dest = \"/src/app\" }"
rebuilt "$rh" >/dev/null
assert_eq "$(layer_digest_of "$second" 2)" "$(layer_digest_of "$(last_line)" 2)" "http = git:// for the same commit"
over_http=$(last_line)

step "dumb HTTP (no shallow fetches): fetched whole at once, the same layer"
git --git-dir="$srv/git-repos/app.git" update-server-info
rd=$ctx/dumb.toml
recipe "$rd" "{ url = \"http://127.0.0.1:$hport/git-repos/app.git\", ref = \"main\", dest = \"/src/app\" }"
expect_ok build --progress plain "$rd"
assert_eq "$(layer_digest_of "$second" 2)" "$(layer_digest_of "$(last_line)" 2)" "dumb http = git:// for the same commit"
assert_not_contains "$ERR" "trying again" "a shallow fetch dumb HTTP can't do is not retried"

step "credentials never reach the store or the output"
rs=$ctx/secret.toml
recipe "$rs" "{ url = \"http://builder:s3cr3t-t0ken@127.0.0.1:$hport/git/app.git\", ref = \"main\", dest = \"/src/app\" }"
rebuilt "$rs" >/dev/null
assert_eq "$over_http" "$(last_line)" "credentials change no byte"
assert_not_contains "$ERR$OUT" "s3cr3t" "credentials in the output"
if grep -rlI "s3cr3t" "$FACTORY_CACHE" >/dev/null 2>&1; then
    fail "credentials stored in: $(grep -rlI s3cr3t "$FACTORY_CACHE" | head -3)"
fi

step "a --secret authenticates https fetches; without it the fetch fails; its value is nowhere"
echo "builder:p4ss-w0rd" >"$srv/.auth"
rp=$ctx/private.toml
recipe "$rp" "{ url = \"http://127.0.0.1:$hport/private/git/app.git\", ref = \"main\", dest = \"/src/app\", secret = \"gittoken\" }"
echo "builder:p4ss-w0rd" >"$TEST_DIR/token"
expect_exit 2 build "$rp"
assert_contains "$(error_line)" "the step uses secret 'gittoken', but no --secret id=gittoken"
echo "builder:wrong" >"$TEST_DIR/wrong"
expect_exit 1 build --secret "id=gittoken,src=$TEST_DIR/wrong" "$rp"
assert_not_contains "$ERR" "wrong" "a wrong secret's value in the output"
rebuilt "$rp" --secret "id=gittoken,src=$TEST_DIR/token" >/dev/null
assert_eq "$(layer_digest_of "$over_http" 2)" "$(layer_digest_of "$(last_line)" 2)" "private = public"
assert_not_contains "$ERR$OUT" "p4ss" "the secret in the output"
if grep -rlI "p4ss" "$FACTORY_CACHE" >/dev/null 2>&1; then
    fail "the secret stored in: $(grep -rlI p4ss "$FACTORY_CACHE" | head -3)"
fi

step "a missing ref is an error naming it and the URL"
rn=$ctx/nope.toml
recipe "$rn" "{ url = \"git://127.0.0.1:$port/app.git\", ref = \"nope\", dest = \"/src/app\" }"
expect_exit 1 build "$rn"
assert_contains "$(error_line)" "ref 'nope' not found in git://127.0.0.1:$port/app.git"

step "a submodule is pinned at its gitlink commit"
new_repo lib
commit lib lib.txt "lib one"
lib1=$(git -C "$work/lib" rev-parse HEAD)
git -C "$work/app" -c protocol.file.allow=always submodule add -q "git://127.0.0.1:$port/lib.git" vendor/lib
git -C "$work/app" commit -q -m "add lib"
git -C "$work/app" push -q origin HEAD:main
commit lib lib.txt "lib two" # upstream moves on; app still pins lib one
rsub=$ctx/sub.toml
recipe "$rsub" "{ url = \"git://127.0.0.1:$port/app.git\", ref = \"main\", dest = \"/src/app\", submodules = true }"
rebuilt "$rsub" >/dev/null
expect_ok build "$rsub" -o "rootfs:$TEST_DIR/sub-rootfs"
assert_eq "lib one" "$(cat "$TEST_DIR/sub-rootfs/src/app/vendor/lib/lib.txt")" "submodule content"
assert_eq "$lib1" "$(git -C "$work/app" ls-tree HEAD vendor/lib | awk '{print $3}')" "pinned commit"

step "keep_git: git log, status and pull work in the image's clone"
rk=$ctx/keep.toml
recipe "$rk" "{ url = \"git://127.0.0.1:$port/app.git\", ref = \"main\", dest = \"/src/app\", keep_git = true }"
rebuilt "$rk" >/dev/null
keep1=$(last_line)
expect_ok build "$rk" -o "rootfs:$TEST_DIR/keep-rootfs"
clone=$TEST_DIR/keep-rootfs/src/app
assert_eq "$(git -C "$work/app" log --format=%s main)" "$(git -C "$clone" log --format=%s)" "git log"
assert_eq "" "$(git -C "$clone" -c safe.directory='*' status --porcelain --ignore-submodules)" "clean status"
assert_eq "origin/main" "$(git -C "$clone" rev-parse --abbrev-ref '@{upstream}')" "tracking"
commit app NEWS "pulled"
git -C "$clone" -c safe.directory='*' pull -q --ff-only
assert_eq "$(git -C "$work/app" rev-parse HEAD)" "$(git -C "$clone" rev-parse HEAD)" "git pull"
assert_eq "pulled" "$(cat "$clone/NEWS")" "pulled content"
kmirror=$FACTORY_CACHE/git/$(printf '%s' "git://127.0.0.1:$port/app.git" | sha256sum | cut -c1-64).git
kbuilt=$(git --git-dir="$kmirror" rev-parse refs/heads/main)
assert_eq "$(git -C "$work/app" rev-list --count "$kbuilt")" "$(git --git-dir="$kmirror" rev-list --count "$kbuilt")" "keep_git: the mirror holds the whole history"

step "keep_git gives the same digest from a second store"
FACTORY_CACHE=$TEST_DIR/store2 rebuilt "$rk" >/dev/null
# The second store resolves main after the "pulled" commit: rebuild the first store to match.
FACTORY_CACHE=$TEST_DIR/store2 expect_ok build "$rk"
other=$(last_line)
expect_ok build "$rk"
assert_eq "$(last_line)" "$other" "keep_git digest across stores"

step "--offline: the daemon and the server stopped, the same digest from the mirror"
expect_ok build "$r"
online=$(last_line)
kill "$GIT_DAEMON_PID" "$HTTP_PID" 2>/dev/null
wait "$GIT_DAEMON_PID" "$HTTP_PID" 2>/dev/null || true
expect_ok build --offline --progress plain "$r"
assert_eq "$online" "$(last_line)" "offline digest"
expect_exit 1 build --offline "$rn"
assert_contains "$(error_line)" "offline: ref 'nope' not found in the mirror of git://127.0.0.1:$port/app.git"
rm -rf "$FACTORY_CACHE/git"
expect_exit 1 build --offline "$r"
assert_contains "$(error_line)" "offline: no mirror of git://127.0.0.1:$port/app.git in the store"
echo "PASS: $TEST_NAME"
