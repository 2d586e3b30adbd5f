# raw:FILE (docs/ami-bake.md "raw"): a GPT disk with the ext4 as root partition, and an EFI
# system partition holding systemd-boot, the kernel and a loader entry when the image has a
# kernel; every GUID derived from the digest; byte-identical exported twice.
source "$(dirname "$0")/../lib.sh"
need jq sfdisk sgdisk mke2fs debugfs e2fsck mkfs.vfat mcopy mdir mtype
need_root
bb=$(busybox_context)

mkdir -p ctx/boot ctx/efi
head -c 300000 /dev/urandom >ctx/boot/vmlinuz-6.1.0-test
head -c 200000 /dev/urandom >ctx/boot/initrd.img-6.1.0-test
printf 'MZ not really an EFI binary\n' >ctx/efi/systemd-bootx64.efi
write ctx/plain.toml <<EOF
[image]
name = "raw-plain"
epoch = 1700000000

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]
EOF
{
    sed 's/raw-plain/raw-boot/' ctx/plain.toml
    cat <<'EOF'

[[step]]
copy = [
  { src = "boot/", dest = "/boot/" },
  { src = "efi/systemd-bootx64.efi", dest = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi" },
]
EOF
} >ctx/boot.toml
plain=$(build ctx/plain.toml)
boot=$(build ctx/boot.toml)

step "an image without a kernel: one root partition"
expect_ok export "$plain" "raw:$TEST_DIR/plain.img" "ext4:$TEST_DIR/plain.ext4"
sfdisk --json "$TEST_DIR/plain.img" >"$TEST_DIR/plain.sfdisk" || fail "sfdisk can't read the disk"
assert_eq 1 "$(jq '.partitiontable.partitions | length' "$TEST_DIR/plain.sfdisk")" "one partition"
assert_eq gpt "$(jq -r .partitiontable.label "$TEST_DIR/plain.sfdisk")" "a GPT"
assert_eq 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 \
    "$(jq -r '.partitiontable.partitions[0].type' "$TEST_DIR/plain.sfdisk")" "root partition type"
assert_eq '["root"]' "$(jq -c '[.partitions[].name]' "$TEST_DIR/plain.img.json")" "no ESP in the json"

step "the root partition is the ext4 export, byte for byte"
start=$(jq '.partitions[0].start' "$TEST_DIR/plain.img.json")
size=$(jq '.partitions[0].size' "$TEST_DIR/plain.img.json")
assert_eq "$(stat -c %s "$TEST_DIR/plain.ext4")" "$size" "root partition size"
cmp -n "$size" -i "$start:0" "$TEST_DIR/plain.img" "$TEST_DIR/plain.ext4" ||
    fail "the root partition differs from ext4:FILE"

step "an image with a kernel: ESP + root, valid, GUIDs from the digest"
expect_ok export "$boot" "raw:$TEST_DIR/one.img"
expect_ok export "$boot" "raw:$TEST_DIR/two.img"
cmp "$TEST_DIR/one.img" "$TEST_DIR/two.img" || fail "two raw exports differ"
json=$TEST_DIR/one.img.json
assert_eq "$(sha256sum "$TEST_DIR/one.img" | cut -d' ' -f1)" "$(jq -r .sha256 "$json")" "json sha256"
assert_eq raw "$(jq -r .format "$json")" "json format"
sgdisk -v "$TEST_DIR/one.img" >"$TEST_DIR/sgdisk.out" 2>&1 || fail "sgdisk -v: $(cat "$TEST_DIR/sgdisk.out")"
assert_contains "$(cat "$TEST_DIR/sgdisk.out")" "No problems found" "sgdisk -v"
sfdisk --json "$TEST_DIR/one.img" >"$TEST_DIR/one.sfdisk"
t=$TEST_DIR/one.sfdisk
assert_eq 2 "$(jq '.partitiontable.partitions | length' "$t")" "two partitions"
assert_eq "$(jq -r .uuid "$json" | tr a-z A-Z)" "$(jq -r .partitiontable.id "$t")" "disk GUID"
for i in 0 1; do
    assert_eq "$(jq -r ".partitions[$i].uuid" "$json" | tr a-z A-Z)" \
        "$(jq -r ".partitiontable.partitions[$i].uuid" "$t")" "partition $i GUID"
    assert_eq "$(jq -r ".partitions[$i].name" "$json")" "$(jq -r ".partitiontable.partitions[$i].name" "$t")" "partition $i name"
    assert_eq $(($(jq ".partitions[$i].start" "$json") / 512)) "$(jq ".partitiontable.partitions[$i].start" "$t")" "partition $i start"
done
assert_eq C12A7328-F81F-11D2-BA4B-00A0C93EC93B "$(jq -r '.partitiontable.partitions[0].type' "$t")" "ESP type"
assert_eq esp "$(jq -r '.partitions[0].name' "$json")" "the ESP comes first"
assert_ne "$(jq -r '.partitions[0].uuid' "$json")" "$(jq -r '.partitions[0].uuid' "$TEST_DIR/plain.img.json")" "GUIDs differ between images"

step "the ESP: systemd-boot, the kernel, the initrd, an entry naming the root by PARTUUID"
esp_at=$(jq '.partitions[0].start' "$json")
mdir -i "$TEST_DIR/one.img@@$esp_at" ::EFI/BOOT >"$TEST_DIR/mdir.out" 2>&1 || fail "mdir: $(cat "$TEST_DIR/mdir.out")"
assert_contains "$(cat "$TEST_DIR/mdir.out")" "BOOTX64  EFI" "BOOTX64.EFI"
assert_eq "$(cat ctx/efi/systemd-bootx64.efi)" "$(mtype -i "$TEST_DIR/one.img@@$esp_at" ::EFI/BOOT/BOOTX64.EFI)" "the image's systemd-boot"
entry=$(mtype -i "$TEST_DIR/one.img@@$esp_at" ::loader/entries/factory.conf)
assert_contains "$entry" "root=PARTUUID=$(jq -r '.partitions[1].uuid' "$json")" "root by PARTUUID"
assert_contains "$entry" "linux /vmlinuz-6.1.0-test" "the kernel"
assert_contains "$entry" "console=ttyS0" "the serial console"
mcopy -i "$TEST_DIR/one.img@@$esp_at" ::vmlinuz-6.1.0-test "$TEST_DIR/k" 2>/dev/null
cmp "$TEST_DIR/k" ctx/boot/vmlinuz-6.1.0-test || fail "the kernel on the ESP differs"
root_at=$(jq '.partitions[1].start' "$json")
root_size=$(jq '.partitions[1].size' "$json")
dd if="$TEST_DIR/one.img" of="$TEST_DIR/root.ext4" bs=1M skip=$((root_at >> 20)) count=$((root_size >> 20)) status=none
e2fsck -fn "$TEST_DIR/root.ext4" >"$TEST_DIR/fsck.out" 2>&1 || fail "e2fsck of the root partition: $(cat "$TEST_DIR/fsck.out")"

step "bad input"
mkdir -p ctx/nolo/boot && cp ctx/boot/vmlinuz-6.1.0-test ctx/nolo/boot/
{
    sed 's/raw-plain/raw-noloader/' ctx/plain.toml
    printf '\n[[step]]\ncopy = [{ src = "nolo/boot/", dest = "/boot/" }]\n'
} >ctx/noloader.toml
noloader=$(build ctx/noloader.toml)
expect_exit 1 export "$noloader" "raw:$TEST_DIR/nl.img"
assert_contains "$(error_line)" "no /usr/lib/systemd/boot/efi/systemd-bootx64.efi (install systemd-boot in the image)" "kernel without a loader"
assert_missing "$TEST_DIR/nl.img"
assert_missing "$TEST_DIR/nl.img.json"
grep -q '^\.tmp-' <<<"$(ls -a "$TEST_DIR")" && fail "a temp directory was left: $(ls -a "$TEST_DIR")"
true
