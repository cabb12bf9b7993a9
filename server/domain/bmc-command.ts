/**
 * The commands a machine's BMC carries out, as stored in `bmc_commands` and
 * delivered to metal-bmc. Power commands that take the OS down are recorded as
 * a Planned Reboot first, so the provisioning history does not read them as
 * a crash.
 */
export const BmcCommandName = {
  POWER_ON: "POWER_ON",
  POWER_OFF: "POWER_OFF",
  RESET: "RESET",
  CYCLE: "CYCLE",
  BOOT_FROM_BIOS: "BOOT_FROM_BIOS",
  BOOT_FROM_DISK: "BOOT_FROM_DISK",
  BOOT_FROM_PXE: "BOOT_FROM_PXE",
  LED_ON: "LED_ON",
  LED_OFF: "LED_OFF",
} as const;
export type BmcCommandName = (typeof BmcCommandName)[keyof typeof BmcCommandName];

const PLANNED_REBOOT: ReadonlySet<BmcCommandName> = new Set([BmcCommandName.POWER_OFF, BmcCommandName.RESET, BmcCommandName.CYCLE]);

export const isPlannedReboot = (c: BmcCommandName): boolean => PLANNED_REBOOT.has(c);

/** The LED state a command leaves behind, if it is an LED command. */
export function ledStateAfter(c: BmcCommandName): "on" | "off" | undefined {
  if (c === BmcCommandName.LED_ON) return "on";
  if (c === BmcCommandName.LED_OFF) return "off";
  return undefined;
}

/** What freeing a machine orders: LED off, network boot, reset, so metal-hammer wipes it and waits again. */
export const FREE_COMMANDS: readonly BmcCommandName[] = [BmcCommandName.LED_OFF, BmcCommandName.BOOT_FROM_PXE, BmcCommandName.RESET];

/** What a reinstall orders: network boot and reset, so metal-hammer installs the new image. */
export const REINSTALL_COMMANDS: readonly BmcCommandName[] = [BmcCommandName.BOOT_FROM_PXE, BmcCommandName.RESET];
