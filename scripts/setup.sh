#!/usr/bin/env bash
# Installs everything factory needs on a fresh Debian 12 (bookworm), as root: the C++ build
# stack, the peers the interop tests and benchmarks run against, and the fuzzing toolchain.
# Idempotent: a second run only re-checks. Fails loudly on the first problem.
#
#   bash scripts/setup.sh                 # as root: installs whatever is missing
#   bash scripts/setup.sh --build-only    # only the C++ build stack (installed if root)
#
# When every package is installed it never calls apt-get, root or not. Not root (or with
# --build-only, or FACTORY_SETUP_BUILD_ONLY=1 as recipes/dev.toml sets it) it only requires the
# C++ build stack: when that is complete it lists what else is missing (the tests needing those
# tools skip) and succeeds, so scripts/test.sh runs in an environment that has the build's
# packages but can't or shouldn't install more (a `factory shell recipes/dev.toml`, a CI image).
#
# Why clang-16 and not Debian's default clang (14): libFuzzer needs clang, and the code uses
# std::expected. libstdc++ 12's <expected> is only enabled when __cpp_concepts >= 202002L;
# clang 14 fails on it even when forced, clang 16 compiles it once told the value (scripts/test.sh
# explains the flag it passes to the fuzz build).
set -euo pipefail

build_only=
case ${1:-} in
"") ;;
--build-only) build_only=1 ;;
*)
    echo "usage: bash scripts/setup.sh [--build-only]" >&2
    exit 2
    ;;
esac
[[ ${FACTORY_SETUP_BUILD_ONLY:-0} != 0 ]] && build_only=1
if ! grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    echo "setup.sh: warning: written for Debian 12 (bookworm); continuing anyway" >&2
fi

build_packages=(
    # C++ build
    cmake ninja-build g++ pkg-config
    libarchive-dev libssl-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
    libcurl4-openssl-dev libzstd-dev zlib1g-dev libdeflate-dev googletest libgtest-dev
)
packages=(
    "${build_packages[@]}"
    # fuzzing (libFuzzer + ASan/UBSan runtimes for clang 16)
    clang-16 libclang-rt-16-dev
    # peers for interop tests, benchmarks and the runtime
    skopeo umoci podman runc crun uidmap busybox-static docker-registry apache2-utils mmdebstrap git
    # tools the tests and benchmarks use
    pigz libdeflate-tools zstd gzip tar xz-utils python3 jq curl tmux ca-certificates hyperfine time
    util-linux procps findutils coreutils file shellcheck strace
    # disk exports (ext4:, raw:) and the boot of their images
    e2fsprogs dosfstools mtools fdisk gdisk qemu-system-x86 ovmf
    # the Maven repository (/usr/share/maven-repo) tests/interop/maven_app.sh serves as a mirror
    libmaven-compiler-plugin-java libmaven-resources-plugin-java libmaven-jar-plugin-java
    libsurefire-java libmaven-dependency-plugin-java libcommons-lang3-java
)

export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
missing_build=()
for p in "${build_packages[@]}"; do
    installed "$p" || missing_build+=("$p")
done

# Not root, or asked for the build only: settle for the build stack when it is complete.
if ((${#missing[@]} > 0)) && [[ -n $build_only || $(id -u) -ne 0 ]]; then
    if ((${#missing_build[@]} == 0)); then
        echo "setup.sh: the build's ${#build_packages[@]} packages are installed; not installing" \
            "${#missing[@]} others (the tests that need them skip): ${missing[*]}"
        missing=()
        build_only=1
    elif [[ $(id -u) -ne 0 ]]; then
        echo "setup.sh: must run as root (it calls apt-get) to install: ${missing_build[*]}" >&2
        exit 1
    else
        missing=("${missing_build[@]}")
    fi
fi

if ((${#missing[@]} == 0)); then
    if [[ -z $build_only ]]; then
        echo "setup.sh: all ${#packages[@]} packages already installed"
    fi
else
    echo "setup.sh: installing ${#missing[@]} packages: ${missing[*]}"
    apt-get update -qq
    # Check every name before installing, so a typo or a missing package says which one.
    unknown=()
    for p in "${missing[@]}"; do
        candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
        if [[ -z $candidate || $candidate == "(none)" ]]; then
            unknown+=("$p")
        fi
    done
    if ((${#unknown[@]} > 0)); then
        echo "setup.sh: error: no installation candidate for: ${unknown[*]}" >&2
        exit 1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Sanity checks of what the build and tests rely on; each failure names the tool.
check() {
    if ! "$@" >/dev/null 2>&1; then
        echo "setup.sh: error: check failed: $*" >&2
        exit 1
    fi
}
check cmake --version
check ninja --version
check g++ --version
check test -f /usr/include/toml++/toml.h
# The peers below need root to be useful (podman as another user wants its own storage).
if [[ -n $build_only || $(id -u) -ne 0 ]]; then
    echo "setup.sh: ok (build only)"
    exit 0
fi
check clang++-16 --version
check skopeo --version
check umoci --version
check podman --version
check runc --version
check /bin/busybox true
check test -x /usr/bin/docker-registry
echo "setup.sh: ok"
