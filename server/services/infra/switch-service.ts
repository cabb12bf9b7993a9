import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { SwitchService, SwitchServiceRegisterRequest } from "../../../gen/metal/infra/v1/switch_pb.js";
import { type FanoutBus, publishSwitchChanges } from "../../bus/fanout.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { adoptFromTwin, comparePorts, portMapper, resolvePort, rewriteNeighbours } from "../../domain/switch-ports.js";
import { failedPrecondition } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { switchAdminRepository as admin, type ConnectionRow, switchRepository as switches } from "../../repositories/switch-repository.js";
import { referenceHolds } from "../../repositories/usage-repository.js";
import type { ConnectionRegistry } from "../../sessions/connections.js";
import type { SwitchConfigReader } from "../../sessions/switch/config-reader.js";
import { createSwitchSession, type SwitchSessionTiming } from "../../sessions/switch/session.js";
import type { SwitchSyncWriter } from "../../sessions/switch/sync-writer.js";
import { validator } from "../../validate/validator.js";

/** A switch as the repository returns it, and one of its ports (handlers name no table). */
type SwitchRow = Awaited<ReturnType<typeof switches.ofPartition>>[number];
type StoredSwitchNic = SwitchRow["nics"][number];

const toPortConnection = (c: ConnectionRow) => ({ port: c.switchPort, machineId: c.machineId, machineNic: c.machineNic, vrf: c.vrf });

const changedMeanwhile = (id: string) => new ConnectError(`switch "${id}" changed while registering; retry`, Code.Aborted);

export interface SwitchServiceDeps {
  db: DbHandle;
  bus?: FanoutBus;
  connections?: ConnectionRegistry;
  sessionTiming?: SwitchSessionTiming;
  log?: Logger;
  /** The replica's batched session reads and sync reports (see createSwitchSession). */
  configReader?: SwitchConfigReader;
  syncWriter?: SwitchSyncWriter;
}

/** metal-core registers its switch at start and again whenever it reconnects, then holds its session. */
export function createSwitchService({ db, bus, connections, sessionTiming, log, configReader, syncWriter }: SwitchServiceDeps): ServiceImpl<typeof SwitchService> {
  return {
    session: createSwitchSession({ db, bus, connections, timing: sessionTiming, log, configReader, syncWriter }),

    async register(req) {
      const v = validator().id("partition", req.partition).id("id", req.id).id("rack", req.rack);
      v.text("os_vendor", req.osVendor, 64).text("os_version", req.osVersion, 64);
      if (req.managementIp !== "") v.ip("management_ip", req.managementIp);
      if (req.machineEndpoint !== "") v.hostPort("machine_endpoint", req.machineEndpoint);
      if (req.nics.length > 256) v.add("nics", "must have at most 256 entries");
      v.list(
        "nics",
        req.nics.map((n) => n.name),
        256,
        (p, name) => v.requiredText(p.replace("]", "].name"), name, 64),
      );
      v.list(
        "nics",
        req.nics.map((n) => n.identifier || n.name),
        256,
      );
      v.check();
      // A port without an identifier is known by its name (the original falls back to the MAC).
      const nics: StoredSwitchNic[] = req.nics.map((n) => ({ name: n.name, identifier: n.identifier || n.name }));
      const { created, changed } = await inTransaction(db, async (tx) => {
        const locked = await admin.lockWithCabledPorts(tx, req.id);
        if (!locked) {
          await referenceHolds.partition(tx, req.partition);
          // A racing first registration of the same id turns this into an update, which it would be a moment later anyway.
          const { created } = await switches.upsert(tx, {
            id: req.id,
            partitionId: req.partition,
            rackId: req.rack,
            osVendor: req.osVendor,
            osVersion: req.osVersion,
            managementIp: req.managementIp,
            machineEndpoint: req.machineEndpoint,
            nics,
          });
          return { created, changed: true };
        }
        const existing = locked.sw;
        if (existing.partitionId !== req.partition) {
          throw failedPrecondition(`switch "${req.id}" is registered in partition "${existing.partitionId}", not "${req.partition}"`);
        }
        if (existing.mode === "replace") {
          await registerReplacement(tx, existing, req, nics);
          return { created: false, changed: true };
        }
        return { created: false, changed: await reregister(tx, existing, locked.cabledPorts, req, nics) };
      });
      // A replacement adopted cabling and port VRFs; either way the port list may differ now.
      if (changed) publishSwitchChanges(bus, [req.id]);
      return { created };
    },
  };
}

/**
 * The same switch again (metal-core restarted or reconnected): metadata and
 * ports are refreshed, cabling and port states stay. Ports with machines on
 * them must still be there, else the machines would silently lose their link.
 */
async function reregister(tx: DbHandle, sw: SwitchRow, cabledWhenLocked: readonly string[], req: SwitchServiceRegisterRequest, nics: StoredSwitchNic[]): Promise<boolean> {
  const names = new Set(nics.map((n) => n.name));
  // The cabled ports read with the lock may miss a machine cabled while the lock was awaited. That
  // cannot refuse a registration which keeps every port and the rack; any other reads them again, under the lock.
  const keepsAll = sw.rackId === req.rack && sw.nics.every((n) => names.has(n.name));
  const cabled = keepsAll ? cabledWhenLocked : (await admin.connectionsOfSwitches(tx, [sw.id])).map((c) => c.switchPort);
  const lost = cabled.filter((p) => !names.has(p)).sort(comparePorts);
  if (lost.length > 0) throw failedPrecondition(`switch "${sw.id}" has machines connected on ${lost.join(", ")}; those ports cannot be removed or renamed`);
  if (cabled.length > 0 && sw.rackId !== req.rack) {
    throw failedPrecondition(`switch "${sw.id}" has machines connected in rack "${sw.rackId}"; it cannot move to rack "${req.rack}"`);
  }
  const previous = new Map(sw.nics.map((n) => [n.name, n]));
  const merged = nics.map((n) => {
    const p = previous.get(n.name);
    return p ? { ...n, ...(p.desired ? { desired: p.desired } : {}), ...(p.actual ? { actual: p.actual } : {}) } : n;
  });
  const patch = { rackId: req.rack, osVendor: req.osVendor, osVersion: req.osVersion, managementIp: req.managementIp, machineEndpoint: req.machineEndpoint, nics: merged };
  // The same switch as stored (a restart or reconnect): its desired config stays, and so does its generation.
  if (sameRegistration(sw, patch)) return false;
  await admin.save(tx, sw.id, patch);
  return true;
}

/** Field by field: jsonb does not keep the key order the nics were written with. */
const sameNic = (a: StoredSwitchNic, b: StoredSwitchNic) => a.name === b.name && a.identifier === b.identifier && a.desired === b.desired && a.actual === b.actual;

function sameRegistration(sw: SwitchRow, p: Pick<SwitchRow, "rackId" | "osVendor" | "osVersion" | "managementIp" | "machineEndpoint" | "nics">): boolean {
  return (
    sw.rackId === p.rackId &&
    sw.osVendor === p.osVendor &&
    sw.osVersion === p.osVersion &&
    sw.managementIp === p.managementIp &&
    sw.machineEndpoint === p.machineEndpoint &&
    sw.nics.length === p.nics.length &&
    sw.nics.every((n, i) => sameNic(n, p.nics[i]!))
  );
}

/**
 * New hardware under the name of a switch in replace mode. Its twin (the one
 * other switch of the rack in service) is cabled to every machine of the rack
 * on the mirrored port, so the new switch takes the twin's connections and
 * port VRFs, translated to its own port names (it may run the other OS). It
 * must have every such port, else nothing changes. Then it is in service.
 */
async function registerReplacement(tx: DbHandle, stale: SwitchRow, req: SwitchServiceRegisterRequest, nics: StoredSwitchNic[]): Promise<void> {
  const refuse = (why: string) => failedPrecondition(`switch "${stale.id}" is in replace mode, but ${why}`);
  if (req.rack !== stale.rackId) throw refuse(`the new hardware registers in rack "${req.rack}" instead of "${stale.rackId}"`);
  const twins = (await admin.rackMates(tx, stale)).filter((m) => m.mode !== "replace");
  if (twins.length !== 1) throw refuse(`rack "${stale.rackId}" has ${twins.length} other switches in operational mode; exactly one is needed to copy the cabling from`);
  const locked = await admin.lockCabling(tx, [stale.id, twins[0]!.id]);
  const self = locked.switches.get(stale.id)!;
  const twin = locked.switches.get(twins[0]!.id)!;
  if (self.mode !== "replace" || twin.mode === "replace" || twin.rackId !== self.rackId || twin.partitionId !== self.partitionId) throw changedMeanwhile(self.id);
  const ports = nics.map((n) => n.name);
  const fromPrevious = portMapper(self.osVendor, req.osVendor, ports);
  const adopted = adoptFromTwin({
    twinConnections: locked.connections.filter((c) => c.switchId === twin.id).map(toPortConnection),
    fromTwin: portMapper(twin.osVendor, req.osVendor, ports),
    previousConnections: locked.connections.filter((c) => c.switchId === self.id).map(toPortConnection),
    fromPrevious: (p) => fromPrevious(resolvePort(self.nics, p)),
    lldpNic: (machineId) => locked.machines.get(machineId)?.hardware?.nics.find((n) => n.neighbors.some((x) => x.hostname === self.id))?.name,
  });
  if (!adopted.ok) throw refuse(`the new hardware does not mirror its twin "${twin.id}": ${adopted.reason}`);
  await admin.setConnectionsOfSwitch(tx, self.id, adopted.connections);
  for (const m of locked.machines.values()) {
    const hardware = m.hardware && rewriteNeighbours(m.hardware, self.id, self.id, (p) => fromPrevious(resolvePort(self.nics, p)));
    if (hardware) await admin.setMachineHardware(tx, m.id, hardware);
  }
  // New hardware: port states of the old one mean nothing for it.
  await admin.save(tx, self.id, { osVendor: req.osVendor, osVersion: req.osVersion, managementIp: req.managementIp, machineEndpoint: req.machineEndpoint, nics, mode: "operational" });
}
