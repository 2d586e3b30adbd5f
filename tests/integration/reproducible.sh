# The "Identical" promise: the same recipe built from two separate copies of the sources gives
# the same manifest digest although everything that must not matter differs:
#
#                    copy A                          copy B
#   file system      the test dir (ext4 here)        a tmpfs (other readdir order)
#   path             $TEST_DIR/a                     "$TEST_DIR/b dir/deep er/src" (spaces)
#   creation order   forward                         reverse
#   umask            022 (checkout and build)        077 (checkout and build)
#   owner of files   root                            nobody:nogroup (chown -R)
#   user building    root                            nobody (setpriv)
#   mtimes           as created                      touch -d 2001-02-03 (and again later)
#   TZ, locale       UTC, C                          Asia/Tokyo, C.UTF-8
#   hostname         the machine's                   other-host (unshare --uts)
#   CPUs             all                             1 (taskset -c 0)
#   working dir      /, absolute recipe path         the recipe's dir, relative path
#   store            fresh                           fresh, owned by nobody
#   ignored files    none                            junk.log, tmp/ (.factoryignore)
#
# Two recipes: the repository's recipes/hello.toml and one over a tree with every kind of entry.
source "$(dirname "$0")/../lib.sh"
need jq setpriv unshare taskset
need_root
id nobody >/dev/null 2>&1 || fail "no user 'nobody'"
bb=$(busybox_context)

# The app recipe (the same text in both copies): busybox from the host, the sample tree, owner
# and mode overrides, a config with maps.
app_recipe() {
    cat <<EOF
[image]
name = "repro-app"
tags = ["1"]
epoch = 1234567890

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox" }]

[[step]]
copy = [
  { src = ".", dest = "/srv/tree/" },
  { src = "tool.sh", dest = "/usr/local/bin/tool", uid = 1000, gid = 1000 },
  { src = "sub", dest = "/srv/private/", mode = "0640" },
]

[config]
env = { LANG = "C.UTF-8", APP_HOME = "/srv" }
labels = { "b.label" = "2", "a.label" = "1" }
cmd = ["/usr/local/bin/tool"]
workdir = "/srv"
user = "1000:1000"
ports = ["8080", "53/udp"]
volumes = ["/data"]
EOF
}

# ---- copy A ---------------------------------------------------------------------------------
step "copy A: root, umask 022, ext4, forward order"
A=$TEST_DIR/a
(
    umask 022
    mkdir -p "$A"
    cp -r "$FACTORY_SOURCE_DIR/recipes" "$A/recipes"
    make_tree "$A/app" forward
    app_recipe >"$A/app/app.toml"
)
build_a() {
    (
        cd /
        umask 022
        TZ=UTC LC_ALL=C "$FACTORY" build --cache "$A/store" "$1"
    ) >"$TEST_DIR/a.stdout" 2>"$TEST_DIR/a.stderr" ||
        fail "build A of $1 failed:"$'\n'"$(tail -n 20 "$TEST_DIR/a.stderr")"
    tail -n 1 "$TEST_DIR/a.stdout"
}
hello_a=$(build_a "$A/recipes/hello.toml")
app_a=$(build_a "$A/app/app.toml")
assert_match "^hello:latest $DIGEST_RE\$" "$hello_a" "A: hello"
assert_match "^repro-app:1 $DIGEST_RE\$" "$app_a" "A: app"

# ---- copy B ---------------------------------------------------------------------------------
step "copy B: nobody, umask 077, tmpfs, reverse order, touched, chowned"
mkdir -p "$TEST_DIR/b dir"
mount -t tmpfs -o size=256m,mode=0755 tmpfs "$TEST_DIR/b dir"
B="$TEST_DIR/b dir/deep er/src"
(
    umask 077
    mkdir -p "$B"
    cp -r "$FACTORY_SOURCE_DIR/recipes" "$B/recipes"
    make_tree "$B/app" reverse
    app_recipe >"$B/app/app.toml"
    echo "ignored" >"$B/app/junk.log"
    mkdir -p "$B/app/tmp" && echo "ignored" >"$B/app/tmp/scratch"
)
find "$TEST_DIR/b dir" -exec touch -h -d '2001-02-03 04:05:06' {} +
chown -R nobody:nogroup "$TEST_DIR/b dir"
chmod 0755 "$TEST_DIR/b dir" "$TEST_DIR/b dir/deep er" # nobody owns them anyway
# Sanity: the differences are really there.
assert_eq 600 "$(stat -c %a "$B/recipes/hello.toml")" "B's files carry umask 077"
assert_eq nobody "$(stat -c %U "$B/app/a.txt")" "B's files belong to nobody"

# nobody may not be able to reach the build tree (a clone under /root): run a copy.
cp "$FACTORY" "$TEST_DIR/factory-for-b"
chmod 0755 "$TEST_DIR/factory-for-b"

# build_b DIR RECIPE: as nobody, in DIR, another hostname, one CPU, umask 077, Tokyo time.
# shellcheck disable=SC2016 # the inner shells expand their own arguments
build_b() {
    local dir=$1 recipe=$2
    unshare --uts sh -c 'hostname other-host && exec "$@"' sh \
        setpriv --reuid=nobody --regid=nogroup --clear-groups \
        taskset -c 0 \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$B/home" TZ=Asia/Tokyo LC_ALL=C.UTF-8 \
        sh -c 'umask 077 && cd "$1" && exec "$2" build --cache "$3" "$4"' sh \
        "$dir" "$TEST_DIR/factory-for-b" "$B/store" "$recipe" \
        >"$TEST_DIR/b.stdout" 2>"$TEST_DIR/b.stderr" ||
        fail "build B of $recipe failed:"$'\n'"$(tail -n 20 "$TEST_DIR/b.stderr")"
    tail -n 1 "$TEST_DIR/b.stdout"
}
hello_b=$(build_b "$B/recipes" hello.toml)
app_b=$(build_b "$B/app" app.toml)

step "compare"
assert_eq "$hello_a" "$hello_b" "recipes/hello.toml: A and B give the same manifest digest"
assert_eq "$app_a" "$app_b" "the sample tree: A and B give the same manifest digest"
assert_eq nobody "$(stat -c %U "$B/store/index.json")" "B's store was written by nobody"

step "B again, after touching everything once more: same digest (cached or not)"
find "$B/app" -exec touch -h -d '2022-02-22 22:22:22' {} +
assert_eq "$app_a" "$(build_b "$B/app" app.toml)" "rebuild after touch"

step "the same digests from a third store, built by root in B's tree"
assert_eq "$app_a" "$(
    cd "$B/app" && "$FACTORY" build --cache "$TEST_DIR/store-c" app.toml 2>"$TEST_DIR/c.stderr" | tail -n 1
)" "root building nobody's tree"

step "the check would catch a real difference"
echo "one more byte" >>"$B/app/sub/b.txt"
assert_ne "$app_a" "$(build_b "$B/app" app.toml)" "a changed source changes the digest"

umount "$TEST_DIR/b dir"
echo "PASS: $TEST_NAME"
