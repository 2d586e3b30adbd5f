#pragma once
// raw:FILE — a GPT disk for an AMI bake or a VM (docs/ami-bake.md "raw"):
//   - partition "root": the ext4 of ext4.hpp, type "Linux root (x86-64)" of the Discoverable
//     Partitions Specification, so systemd finds it without a kernel command line;
//   - when the image has a kernel (boot/vmlinuz-*) and systemd-boot's EFI binary
//     (usr/lib/systemd/boot/efi/systemd-bootx64.efi), partition "esp" first: FAT32 made by
//     mkfs.vfat --invariant and filled by mtools (no mount) with EFI/BOOT/BOOTX64.EFI, the
//     kernel, the initramfs and a loader entry whose command line names the root partition by
//     PARTUUID and the serial console;
//   - the GPT written by sfdisk from a script: the disk GUID and every partition GUID derived
//     from the image digest, partitions aligned to 1 MiB.
// The same image gives the same bytes. Throws Error (a missing tool names its package).

#include <filesystem>

#include "factory/export/target.hpp"
#include "factory/oci/layout.hpp"

namespace factory::exporter {

// Writes FILE and FILE.json (atomically, as export_ext4). Throws Error prefixed with
// "cannot export to raw:FILE: ".
void export_raw(const oci::Layout& store, const oci::Descriptor& image,
                const std::filesystem::path& file, const DiskOptions& options);

} // namespace factory::exporter
