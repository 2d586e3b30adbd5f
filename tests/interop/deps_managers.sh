# Worked deps recipes for pip and apt (recipes/pip-app.toml, recipes/apt-tools.toml) on one
# Debian base, bootstrapped once for both, and keep_git inside `factory run`:
# - pip installs wheels built here from a PEP 503 index on 127.0.0.1 with --require-hashes;
# - apt-get installs the packages of a list through Debian's mirror;
# each is not re-run when only the source changes, is when its lockfile changes, and gives the
# same image on a second store (its records and cache mounts gone, the base kept);
# - a git step with keep_git = true on the apt image: `git log` and `git pull` work inside
#   `factory run` against a git daemon on 127.0.0.1;
# - `build --check` on that image names a RUN writing `date +%N` and its file /stamp.
source "$(dirname "$0")/../lib.sh"
need mmdebstrap python3 git jq timeout
need_root

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
export GIT_AUTHOR_DATE=2020-01-01T00:00:00Z GIT_COMMITTER_DATE=2020-01-01T00:00:00Z
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- a PEP 503 index with wheels made here ----------------------------------------------------
www=$TEST_DIR/www
# wheel NAME VERSION: a pure-Python wheel whose module says its version; prints its sha256.
wheel() {
    python3 - "$www" "$1" "$2" <<'PY'
import base64, hashlib, os, sys, zipfile
www, name, version = sys.argv[1:]
files = {
    f"{name}.py": f"VERSION = {version!r}\n\ndef hello():\n    return {name!r} + ' ' + VERSION\n",
    f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: factory-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = f"{name}-{version}.dist-info/RECORD"
lines = []
for path, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    lines.append(f"{path},sha256={digest},{len(text.encode())}")
files[record] = "\n".join(lines + [f"{record},,"]) + "\n"
os.makedirs(f"{www}/files", exist_ok=True)
whl = f"{www}/files/{name}-{version}-py3-none-any.whl"
with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
    for path, text in files.items():
        info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
        z.writestr(info, text)
sha = hashlib.sha256(open(whl, "rb").read()).hexdigest()
os.makedirs(f"{www}/simple/{name}", exist_ok=True)
index = f"{www}/simple/{name}/index.html"
old = open(index).read() if os.path.exists(index) else ""
link = f'<a href="../../files/{name}-{version}-py3-none-any.whl#sha256={sha}">{name}-{version}-py3-none-any.whl</a><br>\n'
open(index, "w").write(old + link)
print(sha)
PY
}
greet10=$(wheel greet 1.0)
greet11=$(wheel greet 1.1)
shout10=$(wheel shout 1.0)
start_http_server "$www" 1500
index=http://127.0.0.1:$HTTP_PORT/simple

# The recipes as shipped, with the app and its requirements replaced by the local wheels'.
cp -a "$FACTORY_SOURCE_DIR/recipes/pip-app.toml" "$FACTORY_SOURCE_DIR/recipes/pip-app" \
    "$FACTORY_SOURCE_DIR/recipes/apt-tools.toml" "$FACTORY_SOURCE_DIR/recipes/apt-tools" "$TEST_DIR/"
requirements() {
    printf 'greet==%s \\\n    --hash=sha256:%s\nshout==1.0 \\\n    --hash=sha256:%s\n' "$1" "$2" \
        "$shout10" >"$TEST_DIR/pip-app/requirements.txt"
}
requirements 1.0 "$greet10"
printf 'import greet, shout\nprint(greet.hello() + ", " + shout.hello())\n' >"$TEST_DIR/pip-app/app.py"
pip=(--arg "PIP_INDEX=$index" "$TEST_DIR/pip-app.toml")
apt=("$TEST_DIR/apt-tools.toml")

# rebuilt RECIPE-ARGS...: the steps a build made (not reused), as "N N".
rebuilt() {
    expect_ok build --progress plain "$@"
    { grep -E '^\[main [0-9]+/[0-9]+\] done ' "$TEST_DIR/last.stderr" || true; } |
        sed -E 's/^\[main ([0-9]+)\/.*/\1/' | tr '\n' ' ' | sed 's/ $//'
}

step "apt-tools: the base bootstrapped, the packages of the list installed"
assert_eq "1 2" "$(rebuilt "${apt[@]}")" "first build"
expect_ok run apt-tools:latest -- sh -c 'git --version; make --version | head -n 1; cat /usr/local/share/apt-tools/packages.txt'
assert_match '^git version 2' "$(sed -n 1p <<<"$OUT")" "git installed"
assert_match '^GNU Make 4' "$(sed -n 2p <<<"$OUT")" "make installed"
assert_eq "git make" "$(sed -n '3,$p' <<<"$OUT" | tr '\n' ' ' | sed 's/ $//')" "the list in the image"
expect_ok run apt-tools:latest -- sh -c 'ls /var/cache/apt/archives/*.deb 2>/dev/null | wc -l; ls /var/lib/apt/lists | wc -l'
assert_eq "0" "$(sed -n 1p <<<"$OUT")" "no .deb in the image (a cache mount)"

step "pip-app: the same base reused; pip installs from the local index with hashes"
expect_ok build --progress plain "${pip[@]}"
assert_match '\[main base\] cached ' "$ERR" "the base shared with apt-tools"
expect_ok run pip-app:latest
assert_eq "greet 1.0, shout 1.0" "$OUT" "the app's output"

step "a source change re-runs neither install"
echo 'print("changed")' >>"$TEST_DIR/pip-app/app.py"
assert_eq "3" "$(rebuilt "${pip[@]}")" "pip-app after app.py changed"
echo "changed" >>"$TEST_DIR/apt-tools/motd"
assert_eq "2" "$(rebuilt "${apt[@]}")" "apt-tools after motd changed"

step "a lockfile change re-runs its install"
requirements 1.1 "$greet11"
assert_eq "2 3" "$(rebuilt "${pip[@]}")" "pip-app after requirements.txt changed"
expect_ok run pip-app:latest
assert_eq "greet 1.1, shout 1.0" "$(head -n 1 <<<"$OUT")" "the new pin installed"
echo jq >>"$TEST_DIR/apt-tools/packages.txt"
assert_eq "1 2" "$(rebuilt "${apt[@]}")" "apt-tools after packages.txt changed"
expect_ok run apt-tools:latest -- jq --version
assert_match '^jq-1\.6' "$OUT" "the added package"

step "a wrong hash in requirements.txt fails the install"
requirements 1.1 "$greet10"
expect_exit 1 build "${pip[@]}"
assert_contains "$ERR" "THESE PACKAGES DO NOT MATCH THE HASHES" "pip's refusal"
requirements 1.1 "$greet11"

step "the same images on a second store: its deps records and cache mounts gone"
pip_digest=$(build "${pip[@]}")
apt_digest=$(build "${apt[@]}")
cp -a "$FACTORY_CACHE" "$TEST_DIR/store2"
rm -rf "$TEST_DIR/store2/mounts"
for recipe in pip apt; do
    declare -n args=$recipe
    expect_ok build --dry-run --json "${args[@]}"
    for key in $(jq -r '.[].stages[].steps[] | select(.kind == "deps") | .key' <<<"$OUT"); do
        rm -f "$TEST_DIR/store2/actions/${key:0:2}/$key"*
    done
done
FACTORY_CACHE=$TEST_DIR/store2 expect_ok build --progress plain "${pip[@]}"
assert_eq "$pip_digest" "$(last_line | cut -d' ' -f2)" "pip-app on a second store"
assert_match '\[main 2/3\] done [0-9a-f]' "$ERR" "pip install ran again"
FACTORY_CACHE=$TEST_DIR/store2 expect_ok build --progress plain "${apt[@]}"
assert_eq "$apt_digest" "$(last_line | cut -d' ' -f2)" "apt-tools on a second store"
assert_match '\[main 1/2\] done [0-9a-f]' "$ERR" "apt-get ran again"
rm -rf "$TEST_DIR/store2"

# ---- keep_git inside factory run ---------------------------------------------------------------
step "keep_git: git log and git pull inside factory run"
srv=$TEST_DIR/git-repos
git init -q --bare -b main "$srv/app.git"
git clone -q "$srv/app.git" "$TEST_DIR/work" 2>/dev/null
git -C "$TEST_DIR/work" checkout -q -b main
echo one >"$TEST_DIR/work/README"
git -C "$TEST_DIR/work" add -A && git -C "$TEST_DIR/work" commit -q -m first
git -C "$TEST_DIR/work" push -q origin HEAD:main
start_git_daemon "$srv" 600
port=$GIT_PORT
expect_ok export apt-tools:latest "oci:$TEST_DIR/apt-layout:latest"
write "$TEST_DIR/keep/keep.toml" <<TOML
[image]
name = "keep"

[base]
image = "oci:$TEST_DIR/apt-layout:latest"

[[step]]
git = { url = "git://127.0.0.1:$port/app.git", ref = "main", dest = "/src/app", keep_git = true }
TOML
expect_ok build "$TEST_DIR/keep/keep.toml"
expect_ok run keep:latest -- git -C /src/app log --format=%s
assert_eq "first" "$OUT" "git log in the image"
echo two >>"$TEST_DIR/work/README"
git -C "$TEST_DIR/work" commit -q -am second && git -C "$TEST_DIR/work" push -q origin HEAD:main
expect_ok run keep:latest -- sh -c 'cd /src/app && git pull -q --ff-only && git log --format=%s && cat README'
assert_eq "second first one two" "$(tr '\n' ' ' <<<"$OUT" | sed 's/ $//')" "git pull in the image"

step "build --check on the apt image: a RUN writing date +%N differs, named with its file"
write "$TEST_DIR/stamp/stamp.toml" <<TOML
[image]
name = "stamp"

[base]
image = "oci:$TEST_DIR/apt-layout:latest"

[[step]]
run = "date +%N > /stamp"
TOML
expect_exit 3 build --check "$TEST_DIR/stamp/stamp.toml"
assert_contains "$OUT" "DIFFERS  main 1/1  $TEST_DIR/stamp/stamp.toml:7:1  run date +%N > /stamp" "the step"
assert_contains "$OUT" "~ /stamp  content (10→10 bytes)" "the file"
assert_contains "$OUT" "same     main base" "the base, imported again"
echo "PASS: $TEST_NAME"
