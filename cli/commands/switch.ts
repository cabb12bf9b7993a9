import { Args, type Command, Flags } from "@oclif/core";
import * as sw from "../../gen/metal/admin/v1/switch_pb.js";
import { aliasesOf, allPages, MetalCommand } from "../base.js";
import { type Column, enumLabel, enumParse, since, truncate } from "../output.js";

const SWITCH = ["switches", "sw"];

const syncStatus = (s: sw.Switch) => {
  const ok = s.lastSync?.time;
  const bad = s.lastSyncError?.time;
  if (!ok && !bad) return "never synced";
  if (bad && (!ok || bad.seconds > ok.seconds)) return `error ${since(bad)} ago: ${truncate(s.lastSyncError!.error, 40)}`;
  return `synced ${since(ok)} ago`;
};

export const switchColumns: Column<sw.Switch>[] = [
  { header: "ID", value: (s) => s.id },
  { header: "Partition", value: (s) => s.partition },
  { header: "Rack", value: (s) => s.rack },
  { header: "OS", value: (s) => [s.os?.vendor, s.os?.version].filter(Boolean).join(" ") },
  { header: "Mode", value: (s) => enumLabel(sw.SwitchModeSchema, s.mode).toLowerCase() },
  { header: "Status", value: syncStatus },
  { header: "Management IP", value: (s) => s.managementIp, wide: true },
  { header: "Ports", value: (s) => String(s.nics.length), wide: true },
  { header: "Description", value: (s) => s.description, wide: true },
];

const portColumns: Column<sw.SwitchNic>[] = [
  { header: "Port", value: (n) => n.name },
  { header: "State", value: (n) => enumLabel(sw.SwitchPortStateSchema, n.actualState || n.state).toLowerCase() },
  { header: "Desired", value: (n) => enumLabel(sw.SwitchPortStateSchema, n.desiredState).toLowerCase() },
  { header: "Machine", value: (n) => n.machineId },
  { header: "VRF", value: (n) => n.vrf },
];

const idArg = { id: Args.string({ required: true, description: "switch id" }) };

class SwitchList extends MetalCommand<typeof SwitchList> {
  static override summary = "list switches";
  static override hiddenAliases = aliasesOf("switch:list", SWITCH, ["ls"]);
  static override flags = { partition: Flags.string(), rack: Flags.string(), "sort-by": Flags.string({ multiple: true }) };
  async run() {
    const items = await allPages(async (paging) => {
      const r = await this.client(sw.SwitchService).list({ partition: this.flags.partition, rack: this.flags.rack, paging });
      return { items: r.switches, next: r.nextPageToken };
    });
    this.printList(sw.SwitchSchema, items, switchColumns, { sortBy: this.flags["sort-by"] });
  }
}

class SwitchDescribe extends MetalCommand<typeof SwitchDescribe> {
  static override summary = "show a switch; --ports prints its ports as a table";
  static override hiddenAliases = aliasesOf("switch:describe", SWITCH, ["get"]);
  static override args = idArg;
  static override flags = { ports: Flags.boolean({ description: "the ports with their state and machine" }) };
  async run() {
    const s = (await this.client(sw.SwitchService).get({ id: this.args.id })).switch!;
    if (this.flags.ports) this.printList(sw.SwitchNicSchema, s.nics, portColumns);
    else this.printOne(sw.SwitchSchema, s, switchColumns, "yaml");
  }
}

class SwitchUpdate extends MetalCommand<typeof SwitchUpdate> {
  static override summary = "change a switch's description, console command or mode";
  static override hiddenAliases = aliasesOf("switch:update", SWITCH);
  static override args = idArg;
  static override flags = {
    description: Flags.string(),
    "console-command": Flags.string(),
    mode: Flags.string({ description: "operational or replace" }),
  };
  async run() {
    const f = this.flags;
    const cur = (await this.client(sw.SwitchService).get({ id: this.args.id })).switch!;
    const r = await this.client(sw.SwitchService).update({
      id: cur.id,
      version: cur.meta?.version ?? 0n,
      description: f.description,
      consoleCommand: f["console-command"],
      mode: f.mode ? enumParse(sw.SwitchModeSchema, f.mode) : undefined,
    });
    this.printOne(sw.SwitchSchema, r.switch!, switchColumns);
  }
}

class SwitchDelete extends MetalCommand<typeof SwitchDelete> {
  static override summary = "delete a switch";
  static override hiddenAliases = aliasesOf("switch:delete", SWITCH, ["rm"]);
  static override args = idArg;
  static override flags = { force: Flags.boolean({ description: "even with machines connected" }) };
  async run() {
    const r = await this.client(sw.SwitchService).delete({ id: this.args.id, force: this.flags.force });
    this.printOne(sw.SwitchSchema, r.switch!, switchColumns);
  }
}

function portCommand(id: string, state: sw.SwitchPortState, summary: string) {
  return class extends MetalCommand<typeof Command> {
    static override summary = summary;
    static override hiddenAliases = aliasesOf(id, SWITCH);
    static override args = { ...idArg, port: Args.string({ required: true, description: "port name, e.g. swp1s0" }) };
    async run() {
      const a = this.args as { id: string; port: string };
      const r = await this.client(sw.SwitchService).port({ id: a.id, nic: a.port, state });
      const nic = r.switch!.nics.find((n) => n.name === a.port);
      this.printList(sw.SwitchNicSchema, nic ? [nic] : [], portColumns);
    }
  };
}

interface Connection {
  switchId: string;
  rack: string;
  nic: sw.SwitchNic;
}

const connectionColumns: Column<Connection>[] = [
  { header: "Switch", value: (c) => c.switchId },
  { header: "Port", value: (c) => c.nic.name },
  { header: "Machine", value: (c) => c.nic.machineId },
  { header: "Machine NIC", value: (c) => c.nic.machineNic },
  { header: "VRF", value: (c) => c.nic.vrf || "pxe" },
  { header: "Rack", value: (c) => c.rack, wide: true },
];

class SwitchConnectedMachines extends MetalCommand<typeof SwitchConnectedMachines> {
  static override summary = "which machine is cabled to which switch port";
  static override hiddenAliases = aliasesOf("switch:connected-machines", SWITCH, ["cm"]);
  static override flags = { partition: Flags.string(), rack: Flags.string(), "sort-by": Flags.string({ multiple: true }) };
  async run() {
    const all = await allPages(async (paging) => {
      const r = await this.client(sw.SwitchService).list({ partition: this.flags.partition, rack: this.flags.rack, paging });
      return { items: r.switches, next: r.nextPageToken };
    });
    // JSON/YAML keep the switches (with only their cabled ports); the table has a row per cabled port.
    const cabled = all.map((s) => ({ ...s, nics: s.nics.filter((n) => n.machineId !== "") })).filter((s) => s.nics.length > 0);
    this.printList(sw.SwitchSchema, cabled, connectionColumns, {
      sortBy: this.flags["sort-by"],
      rows: (items) => items.flatMap((s) => s.nics.map((nic) => ({ switchId: s.id, rack: s.rack, nic }))),
    });
  }
}

class SwitchMigrate extends MetalCommand<typeof SwitchMigrate> {
  static override summary = "move the cabling and port configuration of a switch to its new hardware";
  static override hiddenAliases = aliasesOf("switch:migrate", SWITCH);
  static override args = { old: Args.string({ required: true, description: "switch being replaced" }), new: Args.string({ required: true, description: "its replacement" }) };
  async run() {
    const r = await this.client(sw.SwitchService).migrate({ oldSwitch: this.args.old, newSwitch: this.args.new });
    this.printOne(sw.SwitchSchema, r.switch!, switchColumns);
  }
}

export const SWITCH_COMMANDS: Record<string, typeof Command> = {
  "switch:list": SwitchList,
  "switch:describe": SwitchDescribe,
  "switch:update": SwitchUpdate,
  "switch:delete": SwitchDelete,
  "switch:port:up": portCommand("switch:port:up", sw.SwitchPortState.UP, "bring a port up"),
  "switch:port:down": portCommand("switch:port:down", sw.SwitchPortState.DOWN, "take a port down"),
  "switch:migrate": SwitchMigrate,
  "switch:connected-machines": SwitchConnectedMachines,
};
