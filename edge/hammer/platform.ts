import type { Hardware } from "./hardware.js";

/**
 * The hardware adapter of the machine the hammer runs on. None exists yet:
 * the Linux one (reading the inventory from sysfs and lshw, partitioning with
 * sgdisk, kexec) is its own issue. Until then the real binary says so and the
 * simulated hammer (edge/sim/hammer-main.ts) is what runs.
 */
export function platformHardware(platform: NodeJS.Platform = process.platform): Hardware | undefined {
  void platform;
  return undefined;
}
