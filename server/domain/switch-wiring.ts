/**
 * Which leaf switches a machine hangs off, from the LLDP neighbours its NICs
 * saw: the neighbour's system name is the switch name, its port the switch
 * NIC. A machine must be wired to exactly two switches of one rack.
 */

export interface MachineNic {
  name: string;
  mac: string;
  neighbors: { hostname: string; port: string }[];
}

export interface LeafSwitch {
  id: string;
  name: string;
  rack: string;
  /** Port names ("swp1s0", "Ethernet4") and their identifiers (often the MAC). */
  nics: { name: string; identifier: string }[];
}

export interface Connection {
  switchId: string;
  switchPort: string;
  machineNic: string;
}

export type Wiring = { ok: true; rack: string; connections: Connection[] } | { ok: false; reason: string };

/** At most this many unknown neighbours are named in a refusal (the rest are counted). */
const NAMED_UNKNOWN = 4;

export function wireMachine(nics: readonly MachineNic[], switches: readonly LeafSwitch[]): Wiring {
  const connections: Connection[] = [];
  const unknown: string[] = [];
  for (const nic of nics) {
    for (const n of nic.neighbors) {
      const sw = switches.find((s) => s.name === n.hostname || s.id === n.hostname);
      const port = sw?.nics.find((p) => p.name === n.port || p.identifier === n.port);
      if (sw && port) connections.push({ switchId: sw.id, switchPort: port.name, machineNic: nic.name });
      else unknown.push(`${shown(nic.name)}: ${shown(n.hostname)} port ${shown(n.port)}${sw ? " (no such port)" : ""}`);
    }
  }
  const switchIds = [...new Set(connections.map((c) => c.switchId))];
  if (switchIds.length !== 2) {
    // Naming what the machine did hear is what an operator needs to fix the cabling or the switch's port names.
    const heard = unknown.length === 0 ? "" : `; not known: ${unknown.slice(0, NAMED_UNKNOWN).join(", ")}${unknown.length > NAMED_UNKNOWN ? ` and ${unknown.length - NAMED_UNKNOWN} more` : ""}`;
    return { ok: false, reason: `the machine must be connected to exactly two leaf switches, its LLDP neighbours name ${switchIds.length} known switch(es)${heard}` };
  }
  const racks = new Set(switchIds.map((id) => switches.find((s) => s.id === id)!.rack));
  if (racks.size !== 1) return { ok: false, reason: `the machine's switches ${switchIds.join(" and ")} are in different racks (${[...racks].join(", ")})` };
  return { ok: true, rack: [...racks][0]!, connections };
}

/** A machine-reported name as it may appear in an error: quoted, printable, short. */
function shown(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, "?");
  return JSON.stringify(clean.length > 64 ? `${clean.slice(0, 64)}…` : clean);
}
