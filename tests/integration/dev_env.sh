# recipes/dev.toml, factory's own development environment: built into an empty store (a Debian
# bootstrap through the host's mirror plus apt-get, minutes), then inside `factory shell` the
# project configures with cmake (every find_package of CMakeLists.txt succeeds), the compilers CI
# uses are there, and scripts/setup.sh succeeds without apt-get, as root and as another user.
# Configure only: a full compile inside would double the suite's build time (README shows how).
# Labelled like interop.ci_agent ("interop;debian", tests/CMakeLists.txt).
# shellcheck source=tests/lib.sh
source "$(dirname "$0")/../lib.sh"
need mmdebstrap
need_root

recipe=$FACTORY_SOURCE_DIR/recipes/dev.toml

step "build recipes/dev.toml into an empty store"
build --progress plain "$recipe" >/dev/null
assert_contains "$(cat "$TEST_DIR/last.stdout")" "factory-dev:bookworm" "the image's name"

step "cmake configures the project inside (as the caller, the build directory in the shell's /tmp)"
# The test runs outside the project, so the shell starts at the project's top (docs/shell.md).
# --project: the source tree need not be a git checkout here (the recipe's directory would be).
SUDO_UID=65534 SUDO_GID=65534 run_factory shell --project "$FACTORY_SOURCE_DIR" "$recipe" -- bash -c \
    'id -u; pwd; cmake -S . -B /tmp/devbuild -G Ninja -DCMAKE_BUILD_TYPE=Release'
[[ $RC -eq 0 ]] || fail "cmake inside the dev environment exited $RC:"$'\n'"$(tail -n 30 "$TEST_DIR/last.stdout" "$TEST_DIR/last.stderr")"
assert_eq "65534" "$(sed -n 1p "$TEST_DIR/last.stdout")" "the shell runs as the caller"
assert_eq "$FACTORY_SOURCE_DIR" "$(sed -n 2p "$TEST_DIR/last.stdout")" \
    "the project is mounted at its own path"
assert_contains "$OUT" "The CXX compiler identification is GNU 12" "g++ 12, as on the host"
assert_contains "$OUT" "Build files have been written to: /tmp/devbuild" "cmake configured"
assert_not_contains "$OUT$ERR" "Could NOT find" "every package is found"

step "the fuzz toolchain and the tools the tests call"
# shellcheck disable=SC2016 # expanded inside
expect_ok shell --project "$FACTORY_SOURCE_DIR" "$recipe" -- bash -c \
    'clang++-16 --version | head -n1; for t in ninja git jq python3 tmux skopeo umoci busybox hyperfine shellcheck; do command -v "$t" >/dev/null || echo "missing $t"; done'
assert_match 'clang version 16' "$(sed -n 1p <<<"$OUT")" "clang 16 for the fuzz build"
assert_not_contains "$OUT" "missing" "tools inside"

step "scripts/setup.sh succeeds inside without apt-get, as root and as another user"
expect_ok shell --project "$FACTORY_SOURCE_DIR" "$recipe" -- bash scripts/setup.sh
assert_contains "$OUT" "setup.sh: ok (build only)" "setup.sh as root in the dev environment"
assert_not_contains "$OUT" "setup.sh: installing" "no apt-get as root"
SUDO_UID=65534 SUDO_GID=65534 expect_ok shell --project "$FACTORY_SOURCE_DIR" "$recipe" -- env -u FACTORY_SETUP_BUILD_ONLY bash scripts/setup.sh
assert_contains "$OUT" "not installing" "setup.sh as another user lists what it leaves out"
assert_contains "$OUT" "podman" "podman is among what the dev environment leaves out"
assert_contains "$OUT" "setup.sh: ok (build only)" "setup.sh as another user"
