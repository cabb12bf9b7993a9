import type { ServiceImpl } from "@connectrpc/connect";
import type { SwitchService } from "../../../gen/metal/admin/v1/switch_pb.js";
import { type FanoutBus, publishSwitchChanges } from "../../bus/fanout.js";
import { versionOf } from "../../convert/meta.js";
import { desiredPortStateFromProto, switchModeFromProto, toProtoSwitch } from "../../convert/switch.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { comparePorts, moveConnections, portMapper, resolvePort, rewriteNeighbours } from "../../domain/switch-ports.js";
import { failedPrecondition, notFound } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import type { NewSwitchRow } from "../../repositories/switch-repository.js";
import { type ConnectionRow, switchAdminRepository as switches } from "../../repositories/switch-repository.js";
import { validateSwitchGet, validateSwitchList, validateSwitchMigrate, validateSwitchPort, validateSwitchUpdate } from "../../validate/switch.js";

export interface AdminSwitchServiceDeps {
  db: DbHandle;
  /** Wakes the sessions of switches whose desired config changed. */
  bus?: FanoutBus;
}

const toPortConnection = (c: ConnectionRow) => ({ port: c.switchPort, machineId: c.machineId, machineNic: c.machineNic, vrf: c.vrf });

/** Operators inspect switches, toggle ports, and move cabling off broken hardware. */
export function createAdminSwitchService({ db, bus }: AdminSwitchServiceDeps): ServiceImpl<typeof SwitchService> {
  return {
    async get(req) {
      validateSwitchGet(req);
      const row = await switches.get(db, req.id);
      return { switch: toProtoSwitch(row, await switches.connectionsOfSwitches(db, [row.id])) };
    },

    async list(req) {
      validateSwitchList(req);
      const page = await switches.list(db, { partition: req.partition, rack: req.rack }, pageRequest(req.paging));
      const connections = await switches.connectionsOfSwitches(
        db,
        page.items.map((s) => s.id),
      );
      return { switches: page.items.map((s) => toProtoSwitch(s, connections)), nextPageToken: page.nextPageToken };
    },

    async update(req) {
      validateSwitchUpdate(req);
      const patch: Partial<NewSwitchRow> = {};
      if (req.description !== undefined) patch.description = req.description;
      if (req.consoleCommand !== undefined) patch.consoleCommand = req.consoleCommand;
      if (req.mode !== undefined) patch.mode = switchModeFromProto(req.mode);
      const row = await inTransaction(db, async (tx) => {
        if (patch.mode === "replace") {
          // The replacement copies its cabling from the rack's other switch: without exactly one in service there is nothing to copy from.
          const current = await switches.get(tx, req.id);
          const mates = await switches.rackMates(tx, current);
          const locked = await switches.lock(tx, [current.id, ...mates.map((m) => m.id)]);
          const inService = mates.filter((m) => locked.get(m.id)?.mode === "operational");
          if (locked.get(current.id)!.mode !== "replace" && inService.length !== 1) {
            throw failedPrecondition(`switch "${current.id}" cannot go into replace mode: rack "${current.rackId}" must have exactly one other switch in operational mode, it has ${inService.length}`);
          }
        }
        return switches.update(tx, req.id, versionOf(req.version), patch);
      });
      return { switch: toProtoSwitch(row, await switches.connectionsOfSwitches(db, [row.id])) };
    },

    async delete(req) {
      validateSwitchGet(req);
      const { row, connections } = await inTransaction(db, async (tx) => {
        const locked = await switches.lockCabling(tx, [req.id]);
        const row = locked.switches.get(req.id)!;
        if (locked.connections.length > 0 && !req.force) {
          const ports = locked.connections.map((c) => c.switchPort).sort(comparePorts);
          throw failedPrecondition(`switch "${req.id}" still has machines connected on ${ports.join(", ")}; migrate them or delete with force`);
        }
        await switches.delete(tx, req.id);
        return { row, connections: locked.connections };
      });
      return { switch: toProtoSwitch(row, connections) };
    },

    async port(req) {
      validateSwitchPort(req);
      const desired = desiredPortStateFromProto(req.state)!;
      const { row, connections } = await inTransaction(db, async (tx) => {
        const sw = (await switches.lock(tx, [req.id])).get(req.id)!;
        const nic = sw.nics.find((n) => n.name.toLowerCase() === req.nic.toLowerCase());
        if (!nic) throw notFound(`port of switch "${sw.id}"`, req.nic);
        const connections = await switches.connectionsOfSwitches(tx, [sw.id]);
        // Toggling a port nobody is cabled to would only hide mistakes (the original refuses it too).
        if (!connections.some((c) => c.switchPort === nic.name)) throw failedPrecondition(`no machine is connected to port ${nic.name} of switch "${sw.id}"`);
        const row = await switches.save(tx, sw.id, { nics: sw.nics.map((n) => (n.name === nic.name ? { ...n, desired } : n)) });
        return { row, connections };
      });
      publishSwitchChanges(bus, [row.id]);
      return { switch: toProtoSwitch(row, connections) };
    },

    async migrate(req) {
      validateSwitchMigrate(req);
      const { row, connections } = await inTransaction(db, async (tx) => {
        const locked = await switches.lockCabling(tx, [req.oldSwitch, req.newSwitch]);
        const from = locked.switches.get(req.oldSwitch)!;
        const to = locked.switches.get(req.newSwitch)!;
        const refuse = (why: string) => failedPrecondition(`cannot migrate switch "${from.id}" to "${to.id}": ${why}`);
        if (from.partitionId !== to.partitionId) throw refuse(`they are in different partitions (${from.partitionId}, ${to.partitionId})`);
        if (from.rackId !== to.rackId) throw refuse(`they are in different racks (${from.rackId}, ${to.rackId})`);
        const taken = locked.connections.filter((c) => c.switchId === to.id);
        if (taken.length > 0)
          throw refuse(
            `"${to.id}" already has machines connected on ${taken
              .map((c) => c.switchPort)
              .sort(comparePorts)
              .join(", ")}`,
          );
        const map = portMapper(
          from.osVendor,
          to.osVendor,
          to.nics.map((n) => n.name),
        );
        const moving = locked.connections.filter((c) => c.switchId === from.id).map(toPortConnection);
        const moved = moveConnections(moving, map);
        if (!moved.ok) throw refuse(`"${to.id}" ${moved.reason}`);
        await switches.moveConnections(
          tx,
          from.id,
          to.id,
          moving.map((c, i) => ({ fromPort: c.port, toPort: moved.connections[i]!.port })),
        );
        for (const m of locked.machines.values()) {
          const hardware = m.hardware && rewriteNeighbours(m.hardware, from.id, to.id, (p) => map(resolvePort(from.nics, p)));
          if (hardware) await switches.setMachineHardware(tx, m.id, hardware);
        }
        // A toggle still pending on a moved port goes with the machine, so that the empty old port is not toggled.
        const movedPorts = new Set(moving.map((c) => c.port));
        const pending = new Map(from.nics.filter((n) => n.desired && movedPorts.has(n.name)).map((n) => [map(n.name), n.desired]));
        const row = await switches.save(tx, to.id, { nics: to.nics.map((n) => (pending.has(n.name) ? { ...n, desired: pending.get(n.name) } : n)) });
        await switches.save(tx, from.id, { nics: from.nics.map(({ desired, ...n }) => (movedPorts.has(n.name) || !desired ? n : { ...n, desired })) });
        return { row, connections: moved.connections.map((c) => ({ switchId: to.id, switchPort: c.port, machineId: c.machineId, machineNic: c.machineNic, vrf: c.vrf })) };
      });
      publishSwitchChanges(bus, [req.oldSwitch, req.newSwitch]);
      return { switch: toProtoSwitch(row, connections) };
    },
  };
}
