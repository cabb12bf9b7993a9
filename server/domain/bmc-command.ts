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

/**
 * Why no command goes to a machine whose BMC address other machine records
 * of its partition report too (a stale record after a hardware swap or a DHCP
 * re-lease): whatever answers there may be one of them, and a power command
 * would hit it. Undefined when the address is the machine's own.
 */
export function sharedBmcAddressProblem(machineId: string, address: string, others: readonly string[]): string | undefined {
  if (others.length === 0) return undefined;
  const names = others.map((id) => `"${id}"`).join(", ");
  return (
    `the BMC address "${address}" of machine "${machineId}" is also the BMC address of machine${others.length > 1 ? "s" : ""} ${names}: ` +
    "a command could reach the wrong machine; delete the stale machine record or correct the BMC address first"
  );
}
