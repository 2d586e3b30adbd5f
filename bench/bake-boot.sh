#!/usr/bin/env bash
# Boots recipes/bake-debian.toml's raw: export under qemu (software emulation, UEFI by OVMF) and
# waits for the marker its unit prints on the serial console; reports the time to build, export
# and boot to the marker. Too slow for CI on 2 cores (see docs/performance.md), so it lives here.
#
#   bash bench/bake-boot.sh             # as root; FACTORY defaults to build/factory
#   BOOT_TIMEOUT=900 bash bench/bake-boot.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

here=$(cd "$(dirname "$0")/.." && pwd)
FACTORY=${FACTORY:-$here/build/factory}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-600}
STORE=${STORE:-}
MARKER=FACTORY-BAKE-BOOTED
OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

[[ $(id -u) -eq 0 ]] || { echo "bake-boot: run as root (a Debian base)" >&2; exit 1; }
for f in "$OVMF_CODE" "$OVMF_VARS"; do
    [[ -f $f ]] || { echo "bake-boot: no $f (package ovmf)" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || { echo "bake-boot: qemu-system-x86 missing" >&2; exit 1; }

WORK=$(mktemp -d /tmp/factory-bake.XXXXXX)
qemu_pid=
cleanup() { [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
store=${STORE:-$WORK/store}

start=$SECONDS
log "building recipes/bake-debian.toml"
"$FACTORY" build --cache "$store" "$here/recipes/bake-debian.toml" -o "raw:$WORK/bake.img" \
    >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; exit 1; }
built=$((SECONDS - start))
log "built and exported in ${built}s: $(jq -r '.size' "$WORK/bake.img.json") bytes"

cp "$OVMF_VARS" "$WORK/vars.fd"
boot_start=$(date +%s.%N)
qemu-system-x86_64 -machine q35 -m 1024 -smp 1 -display none -monitor none -no-reboot \
    -serial "file:$WORK/serial.log" \
    -drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" \
    -drive "if=pflash,format=raw,file=$WORK/vars.fd" \
    -drive "file=$WORK/bake.img,format=raw,if=virtio" &
qemu_pid=$!
found=
while kill -0 "$qemu_pid" 2>/dev/null; do
    if grep -q "$MARKER" "$WORK/serial.log" 2>/dev/null; then found=1; break; fi
    now=$(date +%s.%N)
    if awk -v a="$boot_start" -v b="$now" -v t="$BOOT_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then break; fi
    sleep 1
done
boot_end=$(date +%s.%N)
kill "$qemu_pid" 2>/dev/null || true
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
boot=$(awk -v a="$boot_start" -v b="$boot_end" 'BEGIN { printf "%.1f", b - a }')
if [[ -z $found ]]; then
    echo "bake-boot: no $MARKER on the serial console after ${boot}s; its last lines:" >&2
    tail -n 40 "$WORK/serial.log" >&2
    exit 1
fi
echo "bake-debian: build + raw export ${built}s, boot to the marker ${boot}s (qemu TCG, OVMF, 1 vCPU)"
