#!/usr/bin/env bash
# Installs everything factory needs on a fresh Debian 12 (bookworm), as root: the C++ build
# stack, the peers the interop tests and benchmarks run against, and the fuzzing toolchain.
# Idempotent: a second run only re-checks. Fails loudly on the first problem.
#
#   bash scripts/setup.sh
#
# Why clang-16 and not Debian's default clang (14): libFuzzer needs clang, and the code uses
# std::expected. libstdc++ 12's <expected> is only enabled when __cpp_concepts >= 202002L;
# clang 14 fails on it even when forced, clang 16 compiles it once told the value (scripts/test.sh
# explains the flag it passes to the fuzz build).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: must run as root (it calls apt-get)" >&2
    exit 1
fi
if ! grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    echo "setup.sh: warning: written for Debian 12 (bookworm); continuing anyway" >&2
fi

packages=(
    # C++ build
    cmake ninja-build g++ pkg-config
    libarchive-dev libssl-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
    libcurl4-openssl-dev libzstd-dev zlib1g-dev googletest libgtest-dev
    # fuzzing (libFuzzer + ASan/UBSan runtimes for clang 16)
    clang-16 libclang-rt-16-dev
    # peers for interop tests, benchmarks and the runtime
    skopeo umoci podman runc crun uidmap busybox-static docker-registry mmdebstrap git
    # tools the tests and benchmarks use
    pigz zstd gzip tar xz-utils python3 jq curl tmux ca-certificates hyperfine time
    util-linux procps findutils coreutils file shellcheck
)

export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "setup.sh: all ${#packages[@]} packages already installed"
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
check clang++-16 --version
check skopeo --version
check umoci --version
check podman --version
check runc --version
check /bin/busybox true
check test -x /usr/bin/docker-registry
check test -f /usr/include/toml++/toml.h
echo "setup.sh: ok"
