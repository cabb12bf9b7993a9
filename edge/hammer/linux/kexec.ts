import { join } from "node:path";
import type { InstalledBoot } from "../hardware.js";
import type { CommandRunner } from "./runner.js";

/**
 * The root device a kernel command line names (root=/dev/sda2,
 * root=UUID=…, root=LABEL=…, root=PARTUUID=…), as the argv of the command
 * that prints the device node, or the node itself. Undefined without root=.
 */
export function rootLookup(cmdline: string): { device: string } | { argv: string[] } | undefined {
  const m = /(?:^|\s)root=(\S+)/.exec(cmdline);
  if (!m) return undefined;
  const spec = m[1]!;
  const [key, value] = [spec.slice(0, spec.indexOf("=")), spec.slice(spec.indexOf("=") + 1)];
  if (spec.startsWith("/dev/")) return { device: spec };
  if (key === "UUID") return { argv: ["blkid", "--uuid", value] };
  if (key === "LABEL") return { argv: ["blkid", "--label", value] };
  if (key === "PARTUUID" || key === "PARTLABEL") return { argv: ["blkid", "--list-one", "--output", "device", "--match-token", `${key}=${value}`] };
  return undefined;
}

/** kexec's load: kernel and initrd as files under `root` (where the installation is mounted), the command line as given. */
export function kexecLoadArgv(root: string, boot: InstalledBoot): string[] {
  const argv = ["kexec", "--load", join(root, boot.kernel)];
  if (boot.initrd !== "") argv.push(`--initrd=${join(root, boot.initrd)}`);
  argv.push(`--command-line=${boot.cmdline}`);
  return argv;
}

/**
 * Loads the installed kernel, then releases the disks (`unmount`, sync) and
 * jumps into it. kexec reads the files at load time, so the installation
 * can be unmounted in between; a kernel that does not load leaves the
 * machine where it was, with an error that says why.
 */
export async function kexecInto(runner: CommandRunner, root: string, boot: InstalledBoot, unmount: () => Promise<void>): Promise<void> {
  await runner.run(kexecLoadArgv(root, boot), { timeoutMs: 120_000 });
  await unmount();
  await runner.run(["sync"], { timeoutMs: 10 * 60_000 });
  // On success this never returns: the running kernel is gone.
  await runner.run(["kexec", "--exec"], { timeoutMs: 60_000 });
}
