/**
 * Port names of leaf switches across network operating systems. Cumulus names
 * front ports `swp<N>` (a whole port) or `swp<N>s<M>` (lane M of a breakout
 * port N); SONiC names every lane `Ethernet<X>`. Both describe the same
 * physical layout: lane X = (N-1)*4 + M, a whole port being its first lane.
 * When a switch is replaced by, or migrated to, one running the other OS, the
 * machines stay on the same physical lanes, so names translate through X.
 */

export type SwitchOsKind = "cumulus" | "sonic" | "other";

export function osKind(vendor: string): SwitchOsKind {
  const v = vendor.trim().toLowerCase();
  return v === "cumulus" ? "cumulus" : v === "sonic" ? "sonic" : "other";
}

/** The physical lane of a port name, or undefined for names neither OS uses. */
export function portLine(name: string): number | undefined {
  const sonic = /^Ethernet(0|[1-9]\d{0,3})$/.exec(name);
  if (sonic) return Number(sonic[1]);
  const cumulus = /^swp([1-9]\d{0,3})(?:s([0-3]))?$/.exec(name);
  if (cumulus) return (Number(cumulus[1]) - 1) * 4 + Number(cumulus[2] ?? 0);
  return undefined;
}

/**
 * The name of a lane on a switch of `os`. Lane 4k is ambiguous on Cumulus
 * (`swp<k+1>` unbroken, `swp<k+1>s0` broken out): `breakout` says which, and
 * by default a lane other than the first of its port implies a breakout.
 */
export function portNameOfLine(line: number, os: SwitchOsKind, breakout = line % 4 !== 0): string | undefined {
  if (!Number.isInteger(line) || line < 0) return undefined;
  if (os === "sonic") return `Ethernet${line}`;
  if (os === "cumulus") return breakout || line % 4 !== 0 ? `swp${Math.floor(line / 4) + 1}s${line % 4}` : `swp${line / 4 + 1}`;
  return undefined;
}

/** Translates one port name to the naming of `to`; undefined if the name is not one of a known OS. */
export function translatePortName(name: string, to: SwitchOsKind, breakout?: boolean): string | undefined {
  const line = portLine(name);
  return line === undefined ? undefined : portNameOfLine(line, to, breakout);
}

/**
 * Finds, for ports of a switch running `fromVendor`, the port of the same lane
 * on a switch running `toVendor` that has the ports `targetPorts`. The same OS
 * on both sides maps by name (on one Cumulus switch `swp1` and `swp1s0` are
 * different ports); different OSes map by lane, which also settles the Cumulus
 * breakout question by what the target switch actually has.
 */
export function portMapper(fromVendor: string, toVendor: string, targetPorts: readonly string[]): (port: string) => string | undefined {
  const from = osKind(fromVendor);
  const to = osKind(toVendor);
  const names = new Set(targetPorts);
  if (from === to) return (port) => (names.has(port) ? port : undefined);
  const byLine = new Map<number, string>();
  for (const p of targetPorts) {
    const line = portLine(p);
    if (line !== undefined && !byLine.has(line)) byLine.set(line, p);
  }
  return (port) => {
    const line = portLine(port);
    return line === undefined ? undefined : byLine.get(line);
  };
}

export interface PortConnection {
  port: string;
  machineId: string;
  machineNic: string;
  vrf: string | null;
}

export type PortMove = { ok: true; connections: PortConnection[] } | { ok: false; reason: string };

/**
 * Moves connections onto another switch's ports: every port with a machine
 * must exist there, and no two may land on the same port. All or nothing.
 */
export function moveConnections(connections: readonly PortConnection[], map: (port: string) => string | undefined): PortMove {
  const missing: string[] = [];
  const taken = new Map<string, string>();
  const moved: PortConnection[] = [];
  for (const c of connections) {
    const target = map(c.port);
    if (target === undefined) {
      missing.push(c.port);
      continue;
    }
    const other = taken.get(target);
    if (other !== undefined) return { ok: false, reason: `ports ${other} and ${c.port} would both land on port ${target}` };
    taken.set(target, c.port);
    moved.push({ ...c, port: target });
  }
  if (missing.length > 0) return { ok: false, reason: `it has no port for the machines on ${missing.sort(comparePorts).join(", ")}` };
  return { ok: true, connections: moved };
}

/** Orders port names by lane where they have one, so that swp2 comes before swp10. */
export function comparePorts(a: string, b: string): number {
  const la = portLine(a);
  const lb = portLine(b);
  if (la !== undefined && lb !== undefined && la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface MachineNeighbours {
  nics: { name: string; neighbors: { hostname: string; port: string }[] }[];
}

/**
 * Rewrites a machine's LLDP neighbour entries that point at `fromSwitch` to
 * `toSwitch` with the port translated, so that the stored inventory agrees
 * with the cabling; returns undefined when nothing changed.
 */
export function rewriteNeighbours<H extends MachineNeighbours>(hardware: H, fromSwitch: string, toSwitch: string, map: (port: string) => string | undefined): H | undefined {
  let changed = false;
  const nics = hardware.nics.map((nic) => ({
    ...nic,
    neighbors: nic.neighbors.map((n) => {
      if (n.hostname !== fromSwitch) return n;
      const port = map(n.port) ?? n.port;
      if (port === n.port && toSwitch === fromSwitch) return n;
      changed = true;
      return { ...n, hostname: toSwitch, port };
    }),
  }));
  return changed ? { ...hardware, nics } : undefined;
}

/**
 * The cabling of a replacement switch, copied from its twin (the other leaf of
 * the rack, to which every machine is cabled on the mirrored port): port names
 * and VRFs come from the twin, translated to the new switch's ports. The
 * machine NIC on the new switch's side is what the replaced switch had on
 * that port (or, failing that, on its only port to that machine), else what
 * the machine's LLDP neighbours say; empty if nothing tells.
 */
export function adoptFromTwin(input: {
  twinConnections: readonly PortConnection[];
  /** Twin port name → port of the new switch. */
  fromTwin: (port: string) => string | undefined;
  previousConnections: readonly PortConnection[];
  /** Port name of the replaced hardware → port of the new switch. */
  fromPrevious: (port: string) => string | undefined;
  lldpNic: (machineId: string) => string | undefined;
}): PortMove {
  const moved = moveConnections(input.twinConnections, input.fromTwin);
  if (!moved.ok) return moved;
  return {
    ok: true,
    connections: moved.connections.map((c) => {
      const previous = input.previousConnections.filter((p) => p.machineId === c.machineId);
      const samePort = previous.find((p) => input.fromPrevious(p.port) === c.port);
      const nic = samePort?.machineNic ?? (previous.length === 1 ? previous[0]!.machineNic : undefined) ?? input.lldpNic(c.machineId) ?? "";
      return { ...c, machineNic: nic };
    }),
  };
}

/** The name of a switch port given by name or by its LLDP identifier (machines' neighbour entries use either). */
export function resolvePort(nics: readonly { name: string; identifier: string }[], port: string): string {
  return nics.find((n) => n.name === port || n.identifier === port)?.name ?? port;
}
