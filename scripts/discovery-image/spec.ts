/**
 * What goes into the discovery image: the Debian packages, the programs
 * taken from each (what edge/hammer/linux runs, and what a person debugging
 * a machine on its console wants), other files, and the kernel modules.
 */

/** The kernel: Debian's metapackage, which depends on the current versioned linux-image-*-amd64. */
export const KERNEL_PACKAGE = "linux-image-amd64";

export interface PackageSpec {
  /** Programs by name, found under /usr/sbin, /usr/bin, /sbin or /bin of the package. */
  commands: string[];
  /** Other files, paths as in the package. */
  files?: string[];
}

export const PACKAGES: Record<string, PackageSpec> = {
  "busybox-static": { commands: ["busybox"] },
  "kexec-tools": { commands: ["kexec"] },
  gdisk: { commands: ["sgdisk"] },
  mdadm: { commands: ["mdadm"] },
  lvm2: { commands: ["lvm", "pvs", "vgs", "lvs", "pvcreate", "vgcreate", "lvcreate", "vgchange", "lvchange", "pvremove", "vgremove", "lvremove", "pvscan", "vgscan", "lvscan"] },
  dmsetup: { commands: ["dmsetup"] },
  e2fsprogs: { commands: ["mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "e2fsck", "fsck.ext4", "resize2fs", "tune2fs", "e2label", "dumpe2fs"], files: ["etc/mke2fs.conf"] },
  dosfstools: { commands: ["mkfs.fat", "mkfs.vfat", "fsck.fat", "fsck.vfat", "fatlabel"] },
  lldpd: { commands: ["lldpd", "lldpcli", "lldpctl"] },
  lz4: { commands: ["lz4"] },
  zstd: { commands: ["zstd"] },
  "util-linux": { commands: ["lsblk", "wipefs", "blkdiscard", "blockdev", "blkid", "partx", "mkswap", "findmnt", "fstrim"] },
  mount: { commands: ["mount", "umount", "losetup", "swapon", "swapoff"] },
  iproute2: { commands: ["ip"] },
  dmidecode: { commands: ["dmidecode"] },
  tar: { commands: ["tar"] },
  pciutils: { commands: ["lspci"] },
  "pci.ids": { commands: [], files: ["usr/share/misc/pci.ids"] },
  // Node's C++ runtime (libstdc++, libgcc_s): node itself is this machine's, the libraries come from packages like the rest.
  "libstdc++6": { commands: [] },
};

/**
 * Drivers for QEMU and common servers' network and disk controllers, and
 * what the hammer's disk steps need (md, device mapper, loop, vfat, ext4).
 * ext4 and vfat ask the kernel for crc32c and their code pages at mount
 * time, which no module's "depends" names, so they are listed here.
 */
export const MODULES = [
  "virtio_pci",
  "virtio_net",
  "virtio_blk",
  "virtio_scsi",
  "e1000",
  "e1000e",
  "igb",
  "ixgbe",
  "i40e",
  "mlx5_core",
  "ahci",
  "sd_mod",
  "nvme",
  "md_mod",
  "raid1",
  "dm_mod",
  "dm_raid",
  "loop",
  "crc32c_generic",
  "crc32c_intel",
  "ext4",
  "vfat",
  "nls_cp437",
  "nls_ascii",
  "nls_utf8",
  "nls_iso8859_1",
];

/** Where metal-hammer lives in the image. */
export const HAMMER_DIR = "opt/metal";
