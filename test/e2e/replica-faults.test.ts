import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAST_TIMINGS, type LabMachine } from "../../edge/lab/lab.js";
import { LAB } from "../../edge/lab/seed.js";
import { ConnectionService, DaemonKind } from "../../gen/metal/admin/v1/connection_pb.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually } from "../helpers/eventually.js";
import { CLUSTER_TIMEOUT_MS, CLUSTER_TIMINGS, type ReplicaCluster, replicaRows, sessionRows, startReplicaCluster } from "../helpers/replica-cluster.js";
import { generateKey, splitAddress, sshConsole, writeKnownHosts } from "../helpers/ssh-client.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Issue 15's faults with two metal-api processes behind the round-robin
 * proxy, every daemon dialling the proxy with its real reconnect backoff
 * (500 ms doubling, as shipped): kill -9 of a replica while allocations, an
 * installation, BMC commands and consoles are in flight; then the broker
 * stopped and started again. The second test goes on from the state the
 * first leaves (the killed replica restarted, every daemon on the other).
 * Heavy: two bundled metal-api processes, a private Mosquitto, 7 machines.
 */
let t: ReplicaCluster;

/** The daemons' own backoff (client/backoff.ts DEFAULT_BACKOFF), not the lab's fast one: what "within 10 s" is about. */
const { backoff: _core, ...core } = FAST_TIMINGS.core;
const { backoff: _bmc, ...bmc } = FAST_TIMINGS.bmc;
const { backoff: _hammer, ...hammer } = FAST_TIMINGS.hammer;

/** metal-api's Wait safety net re-reads every 60 s; well within that (scaled) only a wake-up (or a resync) delivers. */
const WAKE_UP_MS = scaled(12_000);

const waitingNow = async (id: string) => {
  const m = await t.machine(id);
  return m.waiting && m.events?.log[0]?.type === T.WAITING;
};

async function waitingMachines(): Promise<LabMachine[]> {
  const out: LabMachine[] = [];
  for (const m of t.lab.machines) if (await waitingNow(m.uuid)) out.push(m);
  return out;
}

/** Hostname -> how many machines the database holds allocated under it. */
async function allocatedByHostname(prefix: string): Promise<Map<string, number>> {
  const res = (await t.db.execute(sql`select allocation->>'hostname' as hostname, count(*)::int as n from machines where allocation->>'hostname' like ${`${prefix}%`} group by 1`)) as unknown as {
    rows: { hostname: string; n: number }[];
  };
  return new Map(res.rows.map((r) => [r.hostname, r.n]));
}

/** Every command of every machine done, and each carried out by its BMC exactly once. */
async function everyCommandRanOnce(): Promise<void> {
  const admin = t.admin(AdminMachineService);
  for (const m of t.lab.machines) {
    const commands = await eventually(`${m.uuid}'s commands to be done`, async () => {
      const list = (await admin.commands({ id: m.uuid })).commands;
      return list.every((c) => c.status === BmcCommandStatus.DONE) ? list : undefined;
    });
    const asked = commands.map((c) => c.command).sort();
    expect([...m.bmc.executed].sort(), `commands of ${m.uuid}`).toEqual(asked);
  }
}

let victim = -1;
let survivor = -1;
/** What the first test holds (the image download, a BMC): the second releases it first, so that a failure of the first does not fail it too. */
const holds: (() => void)[] = [];

beforeAll(async () => {
  t = await startReplicaCluster({ machines: 7, timings: { ...CLUSTER_TIMINGS, core, bmc, hammer } });
  await eventually("7 waiting machines", async () => (await waitingMachines()).length === 7, scaled(90_000));
}, scaled(180_000));

afterAll(async () => {
  await t?.dispose();
});

describe("two replicas under faults [heavy]", () => {
  it("kill -9 of a replica mid-flight: daemons reconnect to the other within 10 s, no allocation lost or doubled, no BMC command run twice, its rows reaped", async () => {
    // The victim holds metal-bmc: its BMC commands and consoles must move with it.
    victim = await eventually("a replica to hold metal-bmc", () => t.holderOf(DaemonKind.BMC, "lab-bmc"));
    survivor = 1 - victim;
    const victimId = t.replicas[victim]!.id;
    const survivorId = t.replicas[survivor]!.id;
    // Each machine has one part: the allocations name theirs, so none lands on a machine a console or a command is about.
    const [installing, held, consoled, relayed, ...spare] = t.lab.machines;

    // An installation held at its image download.
    let releaseImages!: () => void;
    const gate = new Promise<void>((r) => (releaseImages = r));
    holds.push(() => releaseImages());
    t.lab.imageGate = gate;
    await t.admin(MachineService, victim).create({
      project: LAB.project,
      partition: LAB.partition,
      size: LAB.size,
      image: "debian-12",
      hostname: "fault-installing",
      networks: [t.lab.projectNetwork],
      machineId: installing!.uuid,
    });
    await eventually("the installation to be under way", async () => (await t.events(installing!.uuid))[0] === T.INSTALLING);

    // A BMC command metal-bmc received through the victim and is carrying out (the BMC holds it).
    let releaseBmc!: () => void;
    t.lab.bmcs.hold(held!.uuid, new Promise<void>((r) => (releaseBmc = r)));
    holds.push(() => releaseBmc());
    await t.admin(AdminMachineService, victim).bMCCommand({ id: held!.uuid, command: BmcCommand.LED_ON, description: "fault drill" });
    await eventually("the held BMC to receive the command", () => held!.bmc.received === 1);

    // Consoles: one SSH session on the victim itself, one on the survivor relayed through the victim's metal-bmc session.
    const key = await generateKey(t.dir, "operator");
    const target = async (replica: number) => {
      const { host, port } = splitAddress(t.replicas[replica]!.consoleAddress);
      return { host, port, knownHosts: await writeKnownHosts(`${t.dir}/known_hosts_${replica}`, host, port, t.lab.consoleHostKey), home: t.dir };
    };
    const onVictim = sshConsole(await target(victim), consoled!.uuid, { key: key.file, token: t.lab.adminToken });
    await onVictim.see(`connected to ${consoled!.uuid}`);
    const onSurvivor = sshConsole(await target(survivor), relayed!.uuid, { key: key.file, token: t.lab.adminToken });
    await onSurvivor.see(`connected to ${relayed!.uuid}`);

    // Allocations in flight on both replicas when the victim dies.
    const hostnames = ["fault-a", "fault-b", "fault-c"];
    const calls = hostnames.map((hostname, i) =>
      t.admin(MachineService, i < 2 ? victim : survivor).create({
        project: LAB.project,
        partition: LAB.partition,
        size: LAB.size,
        image: "debian-12",
        hostname,
        networks: [t.lab.projectNetwork],
        machineId: spare[i]!.uuid,
      }),
    );
    // Their outcomes are collected from the start: a call cut by the kill must not count as an unhandled rejection.
    const outcomes = Promise.allSettled(calls);
    await t.kill(victim);
    const settled = await outcomes;
    releaseImages();
    t.lab.imageGate = undefined;
    releaseBmc();

    // Every daemon session moves to the survivor within 10 s (scaled), through the proxy that skips the dead replica.
    await eventually(
      "leaf01, leaf02 and metal-bmc to hold sessions with the survivor",
      async () => {
        const { connections } = await t.admin(ConnectionService, survivor).list({});
        const on = (kind: DaemonKind, id: string) => connections.some((c) => c.kind === kind && c.id === id && c.replica === survivorId);
        return on(DaemonKind.SWITCH, "leaf01") && on(DaemonKind.SWITCH, "leaf02") && on(DaemonKind.BMC, "lab-bmc");
      },
      scaled(10_000),
    );
    // The SSH session on the killed replica ended with it, instead of hanging.
    await onVictim.ends();

    // The dead replica's rows are reaped: its replica row and any daemon session still in its name.
    await eventually(
      `${victimId}'s rows to be reaped`,
      async () => !(await replicaRows(t.db)).includes(victimId) && !(await sessionRows(t.db)).some((r) => r.endsWith(`@${victimId}`)),
      scaled(CLUSTER_TIMEOUT_MS + 15_000),
    );

    // No allocation lost or doubled: every acknowledged one is in the database once; an unanswered one at most once.
    const acknowledged = hostnames.filter((_, i) => settled[i]!.status === "fulfilled");
    const stored = await allocatedByHostname("fault-");
    for (const h of acknowledged) expect(stored.get(h), `acknowledged allocation ${h}`).toBe(1);
    for (const [h, n] of stored) expect(n, `machines allocated as ${h}`).toBe(1);
    expect(stored.size).toBeLessThanOrEqual(hostnames.length + 1);
    // Each allocated machine installs; one committed by the victim right before its wake-up went out waits at most for the 60 s safety net.
    const allocated = (await t.admin(AdminMachineService).list({ partition: LAB.partition })).machines.filter((m) => m.allocation?.hostname.startsWith("fault-"));
    expect(allocated.length).toBe(stored.size);
    for (const m of allocated) await eventually(`${m.allocation!.hostname} to phone home`, async () => (await t.events(m.id)).includes(T.PHONED_HOME), scaled(90_000));

    // The held command ran once, its result reached the survivor; a command queued now runs on the reconnected metal-bmc.
    const next = consoled!;
    await t.admin(AdminMachineService, survivor).bMCCommand({ id: next.uuid, command: BmcCommand.LED_ON, description: "after the fault" });
    await eventually("the new command's LED to be on", () => next.bmc.led === "on");
    await everyCommandRanOnce();
    expect(held!.bmc.executed).toEqual(["LED_ON"]);

    // The console on the survivor whose relay ran through the victim's metal-bmc session ended with a message, not silence;
    // a new one for that machine works through the survivor.
    expect(await onSurvivor.ends()).toBe(1);
    expect(onSurvivor.seen.out).toContain(`metal-console: the console of machine "${relayed!.uuid}" ended`);
    const again = sshConsole(await target(survivor), relayed!.uuid, { key: key.file, token: t.lab.adminToken });
    await again.see(`connected to ${relayed!.uuid}`);
    again.type("hostname\r");
    await again.see("there is no login in the discovery image");
    again.kill();
    await again.ends();

    // The killed replica comes back under its id and is counted again.
    await t.restart(victim);
    await eventually(`${victimId} to register again`, async () => (await replicaRows(t.db)).includes(victimId));
  });

  it("the broker stopped and started again: an allocation made meanwhile is not lost, and wake-ups resume", async () => {
    expect(victim, "runs after the kill test").toBeGreaterThanOrEqual(0);
    for (const release of holds) release();
    t.lab.imageGate = undefined;
    if (!t.replicas[victim]!.running) await t.restart(victim);
    // Every waiting hammer reconnected to the survivor while the victim was down; allocations on the restarted victim cross replicas.
    const [during, after] = await eventually("two waiting machines", async () => {
      const w = await waitingMachines();
      return w.length >= 2 ? w : undefined;
    });
    const allocate = (m: LabMachine, hostname: string) =>
      t.admin(MachineService, victim).create({ project: LAB.project, partition: LAB.partition, size: LAB.size, image: "debian-12", hostname, networks: [t.lab.projectNetwork], machineId: m.uuid });

    await t.broker.stop();
    await allocate(during!, "broker-down");
    // The database took it; the wake-up could not cross. Nothing forces the hammer yet: the broker comes back.
    expect((await t.machine(during!.uuid)).allocation?.hostname).toBe("broker-down");
    await t.broker.start();
    await eventually("the allocation made while the broker was down to reach its hammer", async () => (await t.events(during!.uuid)).includes(T.INSTALLING), WAKE_UP_MS);

    await allocate(after!, "broker-back");
    await eventually("an allocation after the restart to reach its hammer", async () => (await t.events(after!.uuid)).includes(T.INSTALLING), WAKE_UP_MS);
    for (const m of [during!, after!]) await eventually(`${m.uuid} to phone home`, async () => (await t.events(m.uuid)).includes(T.PHONED_HOME), scaled(30_000));
  });
});
