#!/usr/bin/env bash
# The everyday loop on a Debian-based service, factory against podman on the same base image:
# recipes/node-app (Debian bookworm with Node.js, `npm ci` in a deps step, the app copied last)
# and the Containerfile a team would write for it, FROM the very base factory bootstrapped.
#
#   bash bench/debian-rebuild.sh              # as root; FACTORY defaults to build/factory
#   RUNS=3 bash bench/debian-rebuild.sh
#   STORE=/var/tmp/fstore bash bench/debian-rebuild.sh   # keep the store (and its Debian base)
#
# Rows (medians of RUNS, seconds):
#   no-op                 build again, nothing changed
#   change index.js       the app's source changes: the last step rebuilds
#   shell / run           `factory shell RECIPE -- true` (a no-op build, then a container with
#                         the project mounted) against `podman run --rm --network none IMG true`
#   factory without listings   the no-op with the store's listings removed first: each layer
#                         is read (inflated, hashed) once and its listing written again, what
#                         every no-op cost before listings (docs/cache.md "Listings")
#
# Needs the Debian mirror (mmdebstrap, once per store) and the npm registry (npm ci, once per
# tool). A benchmark, not a test: everything lives in one temp directory removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
FACTORY=${FACTORY:-$here/build/factory}
RUNS=${RUNS:-5}
[[ $(id -u) -eq 0 ]] || { echo "debian-rebuild: run as root (mmdebstrap, rootful podman)" >&2; exit 1; }
[[ -x $FACTORY ]] || { echo "debian-rebuild: no factory binary at $FACTORY" >&2; exit 1; }
for tool in podman runc mmdebstrap; do
    command -v "$tool" >/dev/null || { echo "debian-rebuild: missing $tool (scripts/setup.sh)" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/factory-bench-debian.XXXXXX")
pm=()
cleanup() {
    [[ ${#pm[@]} -eq 0 ]] || "${pm[@]}" system reset -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export FACTORY_CACHE=${STORE:-$WORK/store}

cp -r "$here/recipes/node-app" "$WORK/app"
sed 's/^context = "node-app"$/context = "app"/' "$here/recipes/node-app.toml" >"$WORK/app.toml"
# The base alone, to hand to podman: the same [base] table, no steps.
awk '/^\[\[step\]\]/ { exit } { print }' "$WORK/app.toml" |
    sed 's/^name = "node-app"$/name = "node-base"/' >"$WORK/base.toml"
log "cold: factory (Debian base, npm ci)"
"$FACTORY" build "$WORK/app.toml" >"$WORK/cold.log" 2>&1 || { tail "$WORK/cold.log" >&2; exit 1; }
"$FACTORY" build "$WORK/base.toml" -o "docker-archive:$WORK/base.tar:localhost/node-base:1" \
    >"$WORK/base.log" 2>&1 || { tail "$WORK/base.log" >&2; exit 1; }

podman_conf
pm=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay
    --tmpdir "$WORK/podman/tmp")
mkdir -p "$WORK/podman/tmp"
"${pm[@]}" load -q -i "$WORK/base.tar" >/dev/null
cat >"$WORK/app/Containerfile" <<'EOF'
FROM localhost/node-base:1
WORKDIR /app
COPY package.json package-lock.json ./
RUN NODE_EXTRA_CA_CERTS=/run/host-ca.crt npm ci --no-audit --no-fund --no-update-notifier
COPY index.js ./
CMD ["node", "index.js"]
EOF
# The host's CA bundle for npm, as factory's deps step trusts it (docs/recipe.md "trust"): on a
# network whose egress re-signs TLS, npm refuses the registry without it.
printf '%q ' "${pm[@]}" build -q --layers --network host -t localhost/node-app:1 \
    -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro "$WORK/app" \
    >"$WORK/pod_build.sh"
pod_build() { bash "$WORK/pod_build.sh"; }
log "cold: podman build --layers (same base, npm ci)"
pod_build >"$WORK/pcold.log" 2>&1 || { tail "$WORK/pcold.log" >&2; exit 1; }

f_noop=() p_noop=() f_change=() p_change=() f_shell=() p_run=() f_bare=()
for ((i = 1; i <= RUNS; i++)); do
    f_noop+=("$(bench_seconds "$FACTORY" build "$WORK/app.toml")")
    p_noop+=("$(bench_seconds bash "$WORK/pod_build.sh")")
    echo "// round $i" >>"$WORK/app/index.js"
    f_change+=("$(bench_seconds "$FACTORY" build "$WORK/app.toml")")
    p_change+=("$(bench_seconds bash "$WORK/pod_build.sh")")
    f_shell+=("$(cd "$WORK/app" && bench_seconds "$FACTORY" shell "$WORK/app.toml" -- true)")
    p_run+=("$(bench_seconds "${pm[@]}" run --rm --network none localhost/node-app:1 true)")
    rm -rf "$FACTORY_CACHE/listings"
    f_bare+=("$(bench_seconds "$FACTORY" build "$WORK/app.toml")")
    log "round $i: no-op ${f_noop[-1]} / ${p_noop[-1]}, change ${f_change[-1]} / ${p_change[-1]}, shell ${f_shell[-1]} / run ${p_run[-1]}, without listings ${f_bare[-1]}"
done

m() { printf '%s\n' "$@" | median; }
printf '%-28s %10s %10s %8s\n' "" "factory" "podman" "ratio"
row() { awk -v n="$1" -v f="$2" -v p="$3" 'BEGIN { printf "%-28s %10.3f %10.3f %8.3f\n", n, f, p, f / p }'; }
row "no-op" "$(m "${f_noop[@]}")" "$(m "${p_noop[@]}")"
row "change index.js" "$(m "${f_change[@]}")" "$(m "${p_change[@]}")"
row "shell / run -- true" "$(m "${f_shell[@]}")" "$(m "${p_run[@]}")"
printf '%-28s %10.3f\n' "factory without listings" "$(m "${f_bare[@]}")"
log "medians of $RUNS; load $(cut -d' ' -f1-3 /proc/loadavg)"
