import { access, chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { InstallConfig, InstalledBoot } from "../hardware.js";
import type { CommandRunner } from "./runner.js";

/**
 * The image's own install step, run inside the unpacked root. The contract
 * between metal-hammer and an image (what the original's install.sh and
 * /etc/metal/install.yaml were):
 *
 * - INSTALL_CONFIG_PATH: the hammer writes the InstallConfig there as JSON
 *   (mode 0600: it holds the console password) before the step runs.
 * - INSTALL_STEP: the executable run as `chroot <root> /usr/local/bin/metal-install`,
 *   with /dev, /proc and /sys of the running system available, the
 *   environment variables METAL_INSTALL_CONFIG and METAL_BOOT_INFO naming
 *   the two files, and the working directory "/". It configures the OS
 *   (hostname, network, users, bootloader) and exits 0.
 * - BOOT_INFO_PATH: the step writes there, as JSON, how the OS boots:
 *   { "kernel": "/boot/vmlinuz-…", "initrd": "/boot/initrd.img-…",
 *     "cmdline": "…", "bootloaderId": "debian" } (bootloader_id is read too),
 *   kernel and initrd as absolute paths inside the installed root.
 */
export const INSTALL_CONFIG_PATH = "/etc/metal/install.json";
export const INSTALL_STEP = "/usr/local/bin/metal-install";
export const BOOT_INFO_PATH = "/etc/metal/boot-info.json";

/** A bootloader installation and an initramfs rebuild take minutes on slow disks; half an hour means something hangs. */
export const INSTALL_TIMEOUT_MS = 30 * 60_000;
const BOOT_INFO_LIMIT = 64 * 1024;

/** What the running system lends the chroot, in mount order. */
const API_MOUNTS = ["dev", "proc", "sys"] as const;

export async function runInstallStep(runner: CommandRunner, root: string, config: InstallConfig): Promise<InstalledBoot> {
  const step = join(root, INSTALL_STEP);
  await access(step).catch(() => {
    throw new Error(`the image has no install step at ${INSTALL_STEP}`);
  });
  const configFile = join(root, INSTALL_CONFIG_PATH);
  await mkdir(join(root, "/etc/metal"), { recursive: true });
  // Created 0600 before anything is written to it: the console password must not be readable by others even for a moment.
  await writeFile(configFile, "", { mode: 0o600 });
  await chmod(configFile, 0o600);
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
  await rm(join(root, BOOT_INFO_PATH), { force: true });
  const mounted = await mountApi(runner, root);
  try {
    await runner.run(["chroot", root, INSTALL_STEP], { timeoutMs: INSTALL_TIMEOUT_MS, env: { METAL_INSTALL_CONFIG: INSTALL_CONFIG_PATH, METAL_BOOT_INFO: BOOT_INFO_PATH, HOME: "/root" } });
  } finally {
    await unmountApi(runner, mounted);
  }
  const raw = await readFile(join(root, BOOT_INFO_PATH), "utf8").catch(() => {
    throw new Error(`the install step wrote no ${BOOT_INFO_PATH}`);
  });
  return parseBootInfo(raw);
}

/**
 * /dev and /sys are bound recursively (efivarfs under /sys is what a UEFI
 * bootloader installation writes to) and made slaves, so unmounting them
 * later cannot take the running system's /dev/pts or /sys/fs/cgroup along.
 */
async function mountApi(runner: CommandRunner, root: string): Promise<string[]> {
  const mounted: string[] = [];
  try {
    for (const name of API_MOUNTS) {
      const at = join(root, name);
      await mkdir(at, { recursive: true });
      await runner.run(name === "proc" ? ["mount", "-t", "proc", "proc", at] : ["mount", "--rbind", `/${name}`, at]);
      mounted.unshift(at);
      if (name !== "proc") await runner.run(["mount", "--make-rslave", at]);
    }
  } catch (err) {
    await unmountApi(runner, mounted);
    throw err;
  }
  return mounted;
}

async function unmountApi(runner: CommandRunner, mounted: string[]): Promise<void> {
  // Lazy: a daemon the install step left running (an entropy or udev daemon) must not keep the disks from being released.
  for (const at of mounted) await runner.run(["umount", "--recursive", "--lazy", at], { allowFailure: true });
}

/** Reads the boot info the install step wrote; refuses what could not boot. */
export function parseBootInfo(raw: string): InstalledBoot {
  if (raw.length > BOOT_INFO_LIMIT) throw new Error(`${BOOT_INFO_PATH} is larger than ${BOOT_INFO_LIMIT} bytes`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(raw);
  } catch {
    throw new Error(`${BOOT_INFO_PATH} is not JSON`);
  }
  const text = (k: string) => (typeof doc[k] === "string" ? (doc[k] as string) : "");
  const boot: InstalledBoot = { kernel: text("kernel"), initrd: text("initrd"), cmdline: text("cmdline"), bootloaderId: text("bootloaderId") || text("bootloader_id") };
  for (const [name, path] of [
    ["kernel", boot.kernel],
    ["initrd", boot.initrd],
  ] as const) {
    if (path === "" && name === "initrd") continue;
    if (!path.startsWith("/") || path.split("/").includes("..")) throw new Error(`${BOOT_INFO_PATH}: ${name} "${path.slice(0, 100)}" is not an absolute path inside the installation`);
  }
  return boot;
}
