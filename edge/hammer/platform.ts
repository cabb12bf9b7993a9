import { readFileSync } from "node:fs";
import { jsonLog } from "../common/log.js";
import type { Hardware } from "./hardware.js";
import { LinuxHardware } from "./linux/linux-hardware.js";

/** The discovery image's kernel command line carries the machine's id under this name (pixie's boot parameters). */
export const DISCOVERY_PARAM = "metal.machine=";
/** Set to 1 to use the Linux adapter outside the discovery image: a lab VM, an operator who means it. */
export const OPT_IN_ENV = "METAL_HAMMER_LINUX";

/**
 * The hardware adapter of the machine the hammer runs on: the Linux one
 * (edge/hammer/linux), but only inside the discovery image. A free machine's
 * first step is wiping every disk it has, so a hammer started by mistake on
 * a developer's laptop or a server with data must refuse rather than begin:
 * the adapter is returned only when the kernel was booted by pixie (its
 * command line holds metal.machine=) or METAL_HAMMER_LINUX=1 says so
 * explicitly. Otherwise none, and the binary says so.
 */
export function platformHardware(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env, cmdline: () => string = readCmdline): Hardware | undefined {
  if (platform !== "linux") return undefined;
  const discovery =
    env[OPT_IN_ENV] === "1" ||
    cmdline()
      .split(/\s+/)
      .some((p) => p.startsWith(DISCOVERY_PARAM));
  if (!discovery) return undefined;
  // The image download lives in RAM: the discovery image has no disk of its own, and the machine's disks are about to be wiped.
  return new LinuxHardware({ scratchTmpfsSize: "75%", log: jsonLog });
}

function readCmdline(): string {
  try {
    return readFileSync("/proc/cmdline", "utf8");
  } catch {
    return "";
  }
}
