import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type MachineBmcCommand,
  MachineBmcCommandSchema,
  MachineBmcCommandStatus,
  type MachineBmcState,
  MachineBmcStateSchema,
  MachineBootDevice,
  MachinePowerAction,
} from "../../gen/metal/api/v1/machine_pb.js";
import type { BmcCommandRow, StoredBmc } from "../db/schema/index.js";
import { BmcCommandName } from "../domain/bmc-command.js";

const powerCommands = new Map<MachinePowerAction, BmcCommandName>([
  [MachinePowerAction.ON, BmcCommandName.POWER_ON],
  [MachinePowerAction.OFF, BmcCommandName.POWER_OFF],
  [MachinePowerAction.CYCLE, BmcCommandName.CYCLE],
  [MachinePowerAction.RESET, BmcCommandName.RESET],
]);

const bootCommands = new Map<MachineBootDevice, BmcCommandName>([
  [MachineBootDevice.PXE, BmcCommandName.BOOT_FROM_PXE],
  [MachineBootDevice.DISK, BmcCommandName.BOOT_FROM_DISK],
  [MachineBootDevice.BIOS, BmcCommandName.BOOT_FROM_BIOS],
]);

/** The stored command of a tenant's power action; undefined for UNSPECIFIED or unknown values. */
export const powerActionFromProto = (a: MachinePowerAction): BmcCommandName | undefined => powerCommands.get(a);

/** The stored command of a tenant's boot device; undefined for UNSPECIFIED or unknown values. */
export const bootDeviceFromProto = (d: MachineBootDevice): BmcCommandName | undefined => bootCommands.get(d);

const statuses: Record<BmcCommandRow["status"], MachineBmcCommandStatus> = {
  pending: MachineBmcCommandStatus.PENDING,
  done: MachineBmcCommandStatus.DONE,
  failed: MachineBmcCommandStatus.FAILED,
  timed_out: MachineBmcCommandStatus.TIMED_OUT,
};

/** A command as a tenant sees it: metal-bmc's result text is left out, as it may name the BMC's address. */
export const toTenantBmcCommand = (r: BmcCommandRow): MachineBmcCommand =>
  create(MachineBmcCommandSchema, { id: r.id, command: r.command, status: statuses[r.status], createdAt: timestampFromDate(r.createdAt), deadline: timestampFromDate(r.deadline) });

/** The BMC as a tenant's GetBmc shows it: what it reported, never where it is or how to log in. */
export const toTenantBmcState = (b: StoredBmc): MachineBmcState =>
  create(MachineBmcStateSchema, { powerState: b.powerState, firmwareVersion: b.version, lastUpdated: timestampFromDate(new Date(b.lastUpdated)) });
