import { BmcCommandName } from "./bmc-command.js";

/**
 * What a project editor may have a machine's BMC do: power and boot device.
 * The identify LED (an operator's marker in the data center) and everything
 * else stays operator-only.
 */
export const TENANT_POWER_COMMANDS: readonly BmcCommandName[] = [BmcCommandName.POWER_ON, BmcCommandName.POWER_OFF, BmcCommandName.CYCLE, BmcCommandName.RESET];
export const TENANT_BOOT_COMMANDS: readonly BmcCommandName[] = [BmcCommandName.BOOT_FROM_PXE, BmcCommandName.BOOT_FROM_DISK, BmcCommandName.BOOT_FROM_BIOS];

const isBootCommand = (c: BmcCommandName) => TENANT_BOOT_COMMANDS.includes(c);

/**
 * How many BMC commands (anyone's: the tenant's, an operator's, the
 * system's) a machine may have been sent within the window before a tenant's
 * next one is refused. Identical pending commands already replace each other;
 * this bounds how often metal-bmc is made to act on one machine, and how many
 * rows one tenant can add.
 */
export const TENANT_COMMANDS_PER_WINDOW = 10;
export const TENANT_COMMAND_WINDOW_MS = 60_000;

/** The machine as the tenant rules need it. */
export interface TenantCommandTarget {
  id: string;
  /** The operator's hold. */
  state: "available" | "tainted" | "locked";
  /** True while metal installs an image on it (allocated, not yet installed, or reinstalling). */
  installing: boolean;
}

/**
 * Why a tenant may not queue `command` for the machine now; undefined when it may.
 *
 * - Locked: an operator holds the machine as it is (the lock already stops freeing
 *   and reinstalling); its power and boot device are the operator's until unlocked.
 * - Boot device while installing: metal's installation sets the boot device itself
 *   (PXE while the ports are in the provisioning network, disk once installed); a
 *   tenant's "disk" then would boot the tenant's old OS inside the provisioning network.
 */
export function tenantCommandProblem(m: TenantCommandTarget, command: BmcCommandName): string | undefined {
  if (!TENANT_POWER_COMMANDS.includes(command) && !isBootCommand(command)) return `command ${command} is for operators only`;
  if (m.state === "locked") return `machine "${m.id}" is locked; an operator has to unlock it before its power or boot device can be changed`;
  if (m.installing && isBootCommand(command)) return `machine "${m.id}" is being installed; its boot device can be changed once the installation finished`;
  return undefined;
}

/** Why a tenant's command is refused as too many, given when the machine's recent commands were queued; undefined when it is not. */
export function tenantCommandFloodProblem(id: string, queuedAt: readonly Date[], now: Date): string | undefined {
  const since = now.getTime() - TENANT_COMMAND_WINDOW_MS;
  const recent = queuedAt.filter((t) => t.getTime() > since).length;
  if (recent < TENANT_COMMANDS_PER_WINDOW) return undefined;
  return `machine "${id}" was sent ${recent} BMC commands within the last ${TENANT_COMMAND_WINDOW_MS / 1000} s (at most ${TENANT_COMMANDS_PER_WINDOW}); try again later`;
}

/** The tenant's answer when the machine's BMC address is shared: the operators' message names other machines and the address. */
export const TENANT_SHARED_BMC_PROBLEM = "the machine's BMC cannot be told apart from another machine's right now; an operator has to resolve it first";
