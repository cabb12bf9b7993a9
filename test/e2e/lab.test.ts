import { execFileSync, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseHostPort } from "../../client/host-port.js";
import { LAB } from "../../edge/lab/seed.js";
import { IPService as AdminIps } from "../../gen/metal/admin/v1/ip_pb.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { type Machine, MachineRole, MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually, type LabUnderTest, startLabUnderTest } from "./lab-harness.js";

let t: LabUnderTest;

beforeAll(async () => {
  t = await startLabUnderTest(8);
});

afterAll(async () => {
  await t?.dispose();
});

const waitingNow = async (id: string) => {
  const m = await t.machine(id);
  return m.waiting && m.events?.log[0]?.type === T.WAITING;
};

describe("metal-lab: control plane and a simulated partition in one process", () => {
  let machine: Machine;
  let firewall: Machine;

  it("brings all 8 machines to Waiting through pixie and the real metal-hammer, and writes a metalctl context", async () => {
    await eventually("8 waiting machines", async () => {
      const all = (await t.admin(AdminMachineService).list({ partition: LAB.partition })).machines;
      return all.length === 8 && all.every((m) => m.waiting && m.events?.log[0]?.type === T.WAITING);
    });
    for (const m of t.lab.machines) {
      expect((await t.events(m.uuid)).reverse()).toEqual([T.PXE_BOOTING, T.PREPARING, T.REGISTERING, T.WAITING]);
      const got = await t.machine(m.uuid);
      expect(got.size).toBe(LAB.size);
      expect(got.rack).toBe(LAB.rack);
      expect(got.bmc?.address).toBe(`${m.bmc.ip}:623`);
      expect(m.pxeBoots).toBe(1);
    }
    const ctx = parse(await readFile(join(t.dir, "metalctl", "config.yaml"), "utf8"));
    expect(ctx.current).toBe("lab");
    const knownHosts = join(t.dir, "metalctl", "known_hosts");
    expect(ctx.contexts.lab).toMatchObject({ url: t.lab.apiUrl, token: t.lab.adminToken, console: t.lab.consoleAddress, knownHosts });
    // The tenant context is a project member, not a second operator.
    expect(ctx.contexts["lab-project"]).toMatchObject({ url: t.lab.apiUrl, token: t.lab.tenantToken, project: LAB.project, console: t.lab.consoleAddress, knownHosts });
    expect(t.lab.tenantToken).not.toBe(t.lab.adminToken);
  });

  it("allocates a machine and a firewall; both install, phone home, and the leaves put exactly their ports into the tenant VRF / the default VRF", async () => {
    const api = t.admin(MachineService);
    machine = (await api.create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname: "web1", networks: [t.lab.projectNetwork] })).machine!;
    firewall = (
      await api.create({
        project: LAB.project,
        partition: LAB.partition,
        size: LAB.size,
        image: "firewall-ubuntu-3",
        hostname: "fw1",
        role: MachineRole.FIREWALL,
        networks: [t.lab.projectNetwork, LAB.internet],
      })
    ).machine!;
    expect(firewall.allocation?.networks.map((n) => n.network)).toContain(LAB.underlay);
    for (const m of [machine, firewall]) {
      await eventually(`${m.allocation?.hostname} to phone home`, async () => (await t.events(m.id)).includes(T.PHONED_HOME), 20_000);
      const events = (await t.events(m.id)).reverse();
      expect(events.slice(0, 7)).toEqual([T.PXE_BOOTING, T.PREPARING, T.REGISTERING, T.WAITING, T.INSTALLING, T.BOOTING_NEW_KERNEL, T.PHONED_HOME]);
      expect((await t.machine(m.id)).allocation?.installed).toBe(true);
    }
    const lm = t.lab.machines.find((x) => x.uuid === machine.id)!;
    const lf = t.lab.machines.find((x) => x.uuid === firewall.id)!;
    expect(lm.sim.os?.hostname).toBe("web1");
    expect(lf.sim.os?.image).toBe("firewall-ubuntu-3.0");
    // The server ordered boot-from-disk at the BMC: a reset would boot the installed OS.
    expect(lm.bmc.executed).toEqual(["BOOT_FROM_DISK"]);
    const vrf = (await t.machine(machine.id)).allocation!.networks.find((n) => n.network === t.lab.projectNetwork)!.vrf;
    expect(vrf).toBeGreaterThan(0);
    const expected = Object.fromEntries(t.lab.machines.map((m) => [m.port, m === lm ? `vrf${vrf}` : m === lf ? "default" : "pxe"]));
    for (const leaf of ["leaf01", "leaf02"]) {
      await eventually(`${leaf} to carry the allocation`, async () => JSON.stringify(await t.portModes(leaf)) === JSON.stringify(expected));
      await t.synced(leaf);
      const frr = await readFile(join(t.lab.dir, "switches", leaf, "etc/frr/frr.conf"), "utf8");
      expect(frr).toContain(`router bgp ${4200000011 + (leaf === "leaf01" ? 0 : 1)} vrf vrf${vrf}\n`);
      expect(frr).toContain(` neighbor ${lm.port} interface peer-group MACHINE`);
      expect(frr).toContain(` neighbor ${lf.port} interface peer-group FIREWALL`);
      // The running state of the simulated switch follows the files.
      expect(t.lab.leaves.get(leaf)!.sim.runningPort(lm.port)?.vrf).toBe(`vrf${vrf}`);
    }
  });

  it("frees the machine: Machine Reclaim, PXE, Waiting again, its IPs released and its ports back in PXE", async () => {
    const allocated = (await t.machine(machine.id)).allocation!;
    const ips = allocated.networks.flatMap((n) => n.ips);
    expect(ips.length).toBeGreaterThan(0);
    const lm = t.lab.machines.find((x) => x.uuid === machine.id)!;
    await t.admin(MachineService).delete({ id: machine.id, project: LAB.project });
    await eventually("the machine to wait again", async () => (await t.events(machine.id)).includes(T.MACHINE_RECLAIM) && (await waitingNow(machine.id)));
    const events = await t.events(machine.id);
    const reclaim = events.indexOf(T.MACHINE_RECLAIM);
    expect(
      events
        .slice(0, reclaim)
        .reverse()
        .filter((e) => e !== T.PHONED_HOME),
    ).toEqual([T.PXE_BOOTING, T.PREPARING, T.REGISTERING, T.WAITING]);
    expect(lm.pxeBoots).toBe(2);
    expect(lm.sim.disks[0]!.partitions).toEqual([]);
    expect((await t.machine(machine.id)).allocation).toBeUndefined();
    // Free ordered LED off, PXE and a reset, each carried out once.
    expect(lm.bmc.executed).toEqual(["BOOT_FROM_DISK", "LED_OFF", "BOOT_FROM_PXE", "RESET"]);
    const left = (await t.admin(AdminIps).list({ project: LAB.project })).ips.map((i) => i.ip);
    for (const ip of ips) expect(left).not.toContain(ip);
    const lf = t.lab.machines.find((x) => x.uuid === firewall.id)!;
    const expected = Object.fromEntries(t.lab.machines.map((m) => [m.port, m === lf ? "default" : "pxe"]));
    for (const leaf of ["leaf01", "leaf02"]) {
      await eventually(`${leaf} to put the freed machine back into PXE`, async () => JSON.stringify(await t.portModes(leaf)) === JSON.stringify(expected));
      await t.synced(leaf);
    }
  });

  it("runs a power and an LED command once each and acknowledges both", async () => {
    const spare = t.lab.machines.find((m) => m.uuid !== machine.id && m.uuid !== firewall.id)!;
    expect(spare.bmc.executed).toEqual([]);
    const admin = t.admin(AdminMachineService);
    const led = (await admin.bMCCommand({ id: spare.uuid, command: BmcCommand.LED_ON, description: "find me in the rack" })).command!;
    const cycle = (await admin.bMCCommand({ id: spare.uuid, command: BmcCommand.CYCLE })).command!;
    await eventually("both commands done", async () => {
      const cs = (await admin.commands({ id: spare.uuid })).commands;
      return [led.id, cycle.id].every((id) => cs.find((c) => c.id === id)?.status === BmcCommandStatus.DONE);
    });
    const cs = (await admin.commands({ id: spare.uuid })).commands;
    expect(cs.find((c) => c.id === cycle.id)?.result).toBe("Chassis Power Control: Cycle");
    expect(spare.bmc.led).toBe("on");
    // A power cycle is a reboot: the machine PXE-boots into metal-hammer and waits again.
    await eventually("the cycled machine to wait again", async () => spare.pxeBoots === 2 && (await waitingNow(spare.uuid)));
    // Nothing runs a second time: a later command on the same session is carried out after them, with nothing repeated before it.
    const ledOff = (await admin.bMCCommand({ id: spare.uuid, command: BmcCommand.LED_OFF })).command!;
    await eventually("the later command done", async () => (await admin.commands({ id: spare.uuid })).commands.find((c) => c.id === ledOff.id)?.status === BmcCommandStatus.DONE);
    expect(spare.bmc.executed).toEqual(["LED_ON", "CYCLE", "LED_OFF"]);
    expect(t.lab.bmcAgent!.duplicates).toBe(0);
  });

  it("carries the machine's serial console through its BMC, and through metal-console to the real ssh", async () => {
    const spare = t.lab.machines.find((m) => m.uuid !== machine.id && m.uuid !== firewall.id)!;
    const console = await t.lab.bmcs.openConsole({ host: spare.bmc.ip, port: 623, user: "ADMIN", password: "ADMIN", interface: "lanplus" }, spare.uuid);
    let seen = "";
    console.onData((d) => (seen += new TextDecoder().decode(d)));
    expect(seen).toContain(`SimBIOS 1.0 (${spare.uuid})`);
    expect(seen).toContain("Loading metal-hammer...");
    console.close();

    // An operator's ssh: any key, the admin token in LC_METAL_TOKEN (what `metalctl machine console` sends).
    const key = join(t.dir, "id_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    const { host, port } = parseHostPort(t.lab.consoleAddress);
    const ssh = spawn(
      "ssh",
      [
        "-F",
        "/dev/null",
        "-tt",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        key,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        `UserKnownHostsFile=${join(t.dir, "known_hosts")}`,
        "-o",
        "SendEnv=LC_METAL_TOKEN",
        "-o",
        "LogLevel=ERROR",
        "-p",
        String(port),
        `${spare.uuid}@${host}`,
      ],
      { env: { PATH: process.env.PATH, HOME: t.dir, LC_METAL_TOKEN: t.lab.adminToken }, stdio: ["pipe", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    ssh.stdout.on("data", (d: Buffer) => (out += d.toString()));
    ssh.stderr.on("data", (d: Buffer) => (err += d.toString()));
    try {
      await eventually("the console's scrollback over ssh", () => out.includes("Loading metal-hammer..."), 10_000).catch((e: Error) => {
        throw new Error(`${e.message}; ssh said: ${out.slice(-300)} / ${err}`);
      });
      ssh.stdin.write("hostname\r");
      await eventually("the discovery image to answer", () => out.includes("there is no login in the discovery image"), 10_000);
      expect(spare.sim.consoleLog).toContain("there is no login in the discovery image");
    } finally {
      ssh.kill();
    }
  });

  it("starts a second time on the same data: nothing seeded twice, the same machines, the firewall boots its installed OS again", async () => {
    const before = t.lab.machines.map((m) => m.uuid);
    const network = t.lab.projectNetwork;
    const infra = t.lab.infraToken;
    await t.restartLab();
    expect(t.lab.machines.map((m) => m.uuid)).toEqual(before);
    expect(t.lab.projectNetwork).toBe(network);
    expect(t.lab.infraToken).toBe(infra);
    const lf = t.lab.machines.find((m) => m.uuid === firewall.id)!;
    // Known machines are powered on through a BMC reset (a Planned Reboot), so the boot that follows is expected, not an error.
    await eventually("the firewall to phone home after the restart", async () => {
      const log = (await t.machine(firewall.id)).events?.log ?? [];
      return log[0]?.type === T.PHONED_HOME && log[1]?.type === T.PLANNED_REBOOT;
    });
    expect(lf.pxeBoots).toBe(0);
    expect(lf.sim.os?.hostname).toBe("fw1");
    for (const m of t.lab.machines.filter((x) => x !== lf)) {
      await eventually(`${m.uuid} to wait after the restart`, () => waitingNow(m.uuid));
      const log = (await t.machine(m.uuid)).events?.log ?? [];
      expect(log.slice(0, 5).map((e) => e.type)).toEqual([T.WAITING, T.REGISTERING, T.PREPARING, T.PXE_BOOTING, T.PLANNED_REBOOT]);
      expect(log.slice(0, 5).some((e) => e.message.includes("unexpected"))).toBe(false);
    }
    const fw = await t.machine(firewall.id);
    expect(fw.allocation?.hostname).toBe("fw1");
    expect((await t.admin(AdminMachineService).list({ partition: LAB.partition })).machines).toHaveLength(8);
  });
});
