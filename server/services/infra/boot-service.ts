import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { BootService, MachineHardware } from "../../../gen/metal/infra/v1/boot_pb.js";
import { callerOf, kPrincipal } from "../../auth/context.js";
import type { MachineCredentials } from "../../auth/machine-credential.js";
import type { FanoutBus } from "../../bus/fanout.js";
import type { DbHandle } from "../../db/handle.js";
import { EventType } from "../../domain/provisioning.js";
import { failedPrecondition, permissionDenied } from "../../errors.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { createWaitSession, type WaitTiming } from "../../sessions/wait/session.js";
import type { WaitingRegistry } from "../../sessions/wait/waiting.js";
import { bootCredential, renewCredential } from "../../usecases/machines/boot-credential.js";
import { recordEvents } from "../../usecases/machines/events.js";
import { abortReinstall, installationSucceeded } from "../../usecases/machines/lifecycle.js";
import { type RegisteredHardware, registerMachine } from "../../usecases/machines/registration.js";
import { type Validator, validator } from "../../validate/validator.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

function hardwareProblems(v: Validator, hw: MachineHardware | undefined): void {
  if (!hw) return void v.add("hardware", "is required");
  if (hw.memory === 0n || hw.memory > MAX_SAFE) v.add("hardware.memory", "must be a positive number of bytes");
  if (hw.cpus.length === 0) v.add("hardware.cpus", "at least one CPU is required");
  if (hw.nics.length === 0) v.add("hardware.nics", "at least one NIC is required");
  for (const [field, n] of [
    ["cpus", hw.cpus.length],
    ["disks", hw.disks.length],
    ["nics", hw.nics.length],
    ["gpus", hw.gpus.length],
  ] as const) {
    if (n > 128) v.add(`hardware.${field}`, "must have at most 128 entries");
  }
  hw.disks.forEach((d, i) => d.size > MAX_SAFE && v.add(`hardware.disks[${i}].size`, "is too large"));
  hw.nics.forEach((n, i) => {
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(n.mac)) v.add(`hardware.nics[${i}].mac`, `"${n.mac.slice(0, 32)}" is not a MAC address`);
  });
}

function registeredHardware(hw: MachineHardware): RegisteredHardware {
  return {
    memoryBytes: Number(hw.memory),
    cpus: hw.cpus.map((c) => ({ vendor: c.vendor, model: c.model, cores: c.cores, threads: c.threads })),
    disks: hw.disks.map((d) => ({ name: d.name, sizeBytes: Number(d.size) })),
    nics: hw.nics.map((n) => ({ name: n.name, mac: n.mac.toLowerCase(), neighbors: n.neighbors.map((x) => ({ hostname: x.hostname, port: x.port })) })),
    gpus: hw.gpus.map((g) => ({ vendor: g.vendor, model: g.model })),
  };
}

export interface BootServiceDeps {
  db: DbHandle;
  /** Signs the machine credentials the boot path hands out. */
  machineCredentials: MachineCredentials;
  /** The machines waiting on this replica; renews their leases together. */
  waiting: WaitingRegistry;
  bus: FanoutBus;
  waitTiming?: WaitTiming;
}

export function createBootService({ db, bus, waiting, waitTiming, machineCredentials }: BootServiceDeps): ServiceImpl<typeof BootService> {
  return {
    /** Holds the machine allocatable and delivers its allocation (see createWaitSession). */
    wait: createWaitSession({ db, bus, waiting, timing: waitTiming }),

    async installationSucceeded(req, ctx) {
      const v = validator().id("partition", req.partition).uuid("machine_id", req.machineId).requiredText("console_password", req.consolePassword, 256);
      if (!req.bootInfo) v.add("boot_info", "is required");
      else v.text("boot_info.cmdline", req.bootInfo.cmdline, 4096).requiredText("boot_info.image_id", req.bootInfo.imageId, 128);
      v.check();
      // A credential issued before the installation succeeded (the interceptor let it through for this call only) may
      // repeat that report and nothing else: not report the installation of a later reinstall.
      await installationSucceeded(db, req, bus, { repeatOnly: ctx.values.get(kPrincipal)?.machine?.superseded === true });
      return {};
    },

    async abortReinstall(req) {
      validator().id("partition", req.partition).uuid("machine_id", req.machineId).check();
      const b = await abortReinstall(db, req, bus);
      return { bootInfo: b };
    },

    async dhcp(req) {
      validator().id("partition", req.partition).uuid("machine_id", req.machineId).check();
      const { failed } = await recordEvents(db, req.partition, [{ machineId: req.machineId, type: EventType.PXE_BOOTING, rawType: 0, message: "machine sent extended dhcp request" }]);
      if (failed.length > 0) throw failedPrecondition(failed[0]!);
      return {};
    },

    /** The partition's boot configuration and the booting machine's own credential (see bootCredential). */
    async boot(req) {
      const mac = req.mac.toLowerCase().replaceAll("-", ":");
      const v = validator().id("partition", req.partition);
      if (!MAC.test(mac)) v.add("mac", `"${req.mac.slice(0, 32)}" is not a MAC address`);
      if (req.uuid !== "") v.uuid("uuid", req.uuid);
      v.check();
      const p = await partitions.get(db, req.partition);
      const credential = await bootCredential(db, machineCredentials, { partition: req.partition, mac, uuid: req.uuid.toLowerCase() });
      return {
        kernel: p.bootKernelUrl,
        initRamDisks: p.bootImageUrl ? [p.bootImageUrl] : [],
        cmdline: p.bootCommandLine,
        machineId: credential?.machineId ?? "",
        machineCredential: credential?.secret ?? "",
        credentialExpiresAt: credential && timestampFromDate(credential.expiresAt),
        coreEndpoints: credential?.coreEndpoints ?? [],
      };
    },

    async renewCredential(req, ctx) {
      validator().id("partition", req.partition).uuid("machine_id", req.machineId).check();
      const caller = callerOf(ctx).machine;
      // The permission admits machine credentials only, for this very machine (domain/authorize.ts).
      if (!caller) throw permissionDenied("only a machine credential can be renewed");
      const { secret, expiresAt } = await renewCredential(machineCredentials, caller);
      return { machineCredential: secret, credentialExpiresAt: timestampFromDate(expiresAt) };
    },

    /** Hardware, size and cabling are stored together or not at all (see registerMachine); metal-hammer retries. */
    async register(req, ctx) {
      const v = validator().id("partition", req.partition).uuid("machine_id", req.machineId);
      hardwareProblems(v, req.hardware);
      if (req.bios) v.text("bios.vendor", req.bios.vendor, 128).text("bios.version", req.bios.version, 128).text("bios.date", req.bios.date, 64);
      v.check();
      // A credential handed out for a MAC registers only hardware that has it: a booting NIC cannot claim another machine's inventory.
      const mac = ctx.values.get(kPrincipal)?.machine?.mac;
      if (mac && !req.hardware!.nics.some((n) => n.mac.toLowerCase() === mac)) {
        throw permissionDenied(`the machine credential was handed out for MAC ${mac}, which this hardware does not have`);
      }
      const { sizeId, rackId } = await registerMachine(db, {
        partition: req.partition,
        machineId: req.machineId.toLowerCase(),
        hardware: registeredHardware(req.hardware!),
        bios: { vendor: req.bios?.vendor ?? "", version: req.bios?.version ?? "", date: req.bios?.date ?? "" },
      });
      return { size: sizeId, rack: rackId };
    },
  };
}
