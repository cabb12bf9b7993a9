import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AsyncQueue } from "../../client/async-queue.js";
import { TcpProxy } from "../../edge/lab/tcp-proxy.js";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole, TenantRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { type ReplicaConsoleOpenSchema, ReplicaService } from "../../gen/metal/internal/v1/replica_pb.js";
import { createReplicaCredentials } from "../../server/auth/replica-credential.js";
import { consoleRouteRepository } from "../../server/repositories/console-route-repository.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { type SharedDbReplica as Replica, startSharedDbReplicas } from "../helpers/shared-db-replicas.js";
import { type ConsoleTarget, generateKey, refusedConsole, type SshOptions, sshConsole, writeKnownHosts } from "../helpers/ssh-client.js";

// Two replicas on one database: A runs the SSH front end and holds no metal-bmc; B holds the partition's
// metal-bmc session. Every console below is opened on A and reaches the machine through B.
let a: Replica;
let b: Replica;
let stopPair: () => Promise<void>;
let fixture: PartitionFixture;
let dir: string;
let leaseFile: string;
let proxy: TcpProxy;
/** Connections the round-robin proxy handed to either replica so far. */
const proxied = () => [...proxy.handed.values()].reduce((n, c) => n + c, 0);
let stopAgent: (() => Promise<void>) | undefined;
const sims = new SimBmcs();
const simOf = new Map<string, SimMachineBmc>();
let key = "";
let pub = "";
let knownHosts = "";
const tokens = { owner: "", tenantMember: "", admin: "", infra: "" };

const target = (): ConsoleTarget => ({ host: "127.0.0.1", port: a.console!.port, knownHosts, home: dir });
const ssh = (machineId: string, o: Omit<SshOptions, "key">) => sshConsole(target(), machineId, { key, ...o });

let ip = 10;
/** A waiting machine whose simulated BMC metal-bmc (on B) has reported. */
async function machineWithConsole(): Promise<{ id: string; sim: SimMachineBmc }> {
  const booted = await fixture.bootMachine("r1");
  const n = ip++;
  const sim = sims.add({ uuid: booted.id, ip: `10.4.0.${n}`, mac: `aa:bb:cc:00:04:${n.toString(16).padStart(2, "0")}` });
  await sims.writeLeases(leaseFile);
  const admin = a.client(AdminMachineService, a.adminToken);
  await eventually(`the BMC report of ${booted.id}`, async () => (await admin.get({ id: booted.id })).machine?.bmc?.address);
  simOf.set(booted.id, sim);
  return { id: booted.id, sim };
}

/** Allocated to project pb; `beforeAllocation` is printed on its console before the allocation (a previous tenant's output). */
async function allocated(beforeAllocation?: string): Promise<{ id: string; sim: SimMachineBmc }> {
  const m = await machineWithConsole();
  if (beforeAllocation) m.sim.serial.print(beforeAllocation);
  const { machine } = await a.client(MachineService, tokens.owner).create({
    project: "pb",
    partition: "p1",
    size: "s1",
    image: "debian-12",
    name: `replicas-${m.id.slice(0, 4)}`,
    networks: [fixture.primary.pb],
    sshKeys: [pub],
  });
  // The allocation picks any waiting machine: machines booted by other tests may be waiting too.
  if (beforeAllocation) expect(machine?.id).toBe(m.id);
  return { id: machine!.id, sim: simOf.get(machine!.id)! };
}

function startAgent(): void {
  // Through a round-robin TCP proxy whose first backend is B, as behind a load balancer: the agent's session lands on B,
  // and a relay would land on A if metal-bmc opened it on a connection of its own.
  stopAgent = runBmcAgent({ url: `http://${proxy.address}`, token: tokens.infra, agent: "bmc-b", dir, leaseFile, sims }).stop;
}

beforeAll(async () => {
  const pair = await startSharedDbReplicas(["replica-a", "replica-b"], { options: () => ({ consolePollMs: 200 }), console: (id) => id === "replica-a", teardown: "manual" });
  [a, b] = pair.replicas as [Replica, Replica];
  stopPair = pair.stop;
  fixture = await setUpPartition(a);
  dir = await mkdtemp(join(tmpdir(), "console-replicas-test-"));
  leaseFile = join(dir, "dhcpd.leases");
  ({ file: key, pub } = await generateKey(dir, "owner"));
  knownHosts = await writeKnownHosts(join(dir, "known_hosts"), "127.0.0.1", a.console!.port, a.console!.hostKey);
  const admin = a.client(AdminTokens, a.adminToken);
  tokens.admin = a.adminToken;
  tokens.infra = fixture.infraToken;
  tokens.owner = (await admin.create({ subject: "olga", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tokens.tenantMember = (await admin.create({ subject: "tom", roles: { tenantRoles: { t: TenantRole.OWNER } } })).secret;
  // As an L4 load balancer: each connection to the next replica in turn.
  proxy = await TcpProxy.listen("127.0.0.1:0", [new URL(b.url).host, new URL(a.url).host]);
  startAgent();
  await eventually("metal-bmc's session on B", () => b.app.relayBroker.agentsOf("p1").length > 0);
  await eventually("B's row for it", async () => (await consoleRouteRepository.routesOf(a.app.db, "p1", 30_000, a.id)).some((r) => r.replicaId === b.id) || undefined);
});

afterAll(async () => {
  fixture?.stopAll();
  await stopAgent?.();
  await proxy?.close();
  await stopPair?.();
  await rm(dir, { recursive: true, force: true });
});

type Open = MessageInitShape<typeof ReplicaConsoleOpenSchema>;

/** ReplicaService.Console on B with this bearer token: the first answer, or the error. */
async function internalConsole(token: string | undefined, open: Open): Promise<unknown> {
  const input = new AsyncQueue<{ kind: { case: "open"; value: Open } }>();
  input.push({ kind: { case: "open", value: open } });
  const abort = new AbortController();
  try {
    const first = await b.grpcClient(ReplicaService, token).console(input, { signal: abort.signal })[Symbol.asyncIterator]().next();
    return first.value;
  } catch (err) {
    return ConnectError.from(err);
  } finally {
    input.close();
    abort.abort();
  }
}

describe("an SSH console on replica A of a machine whose metal-bmc holds its session on replica B", () => {
  let owned: { id: string; sim: SimMachineBmc };

  beforeAll(async () => {
    owned = await allocated("previous-tenant-secret\r\n");
  });

  it("shows the machine's output, takes typed lines and the window size, withholds output from before the allocation, and ends from the user's side", async () => {
    expect(a.app.relayBroker.agentsOf("p1")).toEqual([]);
    const connectionsBefore = proxied();
    const s = ssh(owned.id, { token: tokens.owner, terminal: { columns: 132, rows: 43 } });
    await s.see(`connected to ${owned.id}`);
    expect(owned.sim.serial.attachments).toBe(1);
    await eventually("the window size on the machine", () => owned.sim.serial.windowSizes.some((w) => w.columns === 132 && w.rows === 43));
    // The machine prints (a reboot's console log), live through B.
    owned.sim.serial.boot();
    await s.see("Welcome to metal sim");
    s.type("echo across replicas\r");
    await s.see("\r\nacross replicas\r\n");
    expect(owned.sim.serial.typed).toContain("echo across replicas\r");
    // The scrollback metal-bmc replayed on attaching predates the allocation: B withheld it (output_since went along).
    expect(s.seen.out).not.toContain("previous-tenant-secret");
    // metal-bmc opened the relay on its session's connection, which the proxy sent to B: no new connection.
    expect(proxied()).toBe(connectionsBefore);
    s.type("\r~.");
    await s.exited;
    await eventually("B's relay to metal-bmc ends", () => owned.sim.serial.attachments === 0);
    await eventually("A's console ends", () => a.console!.sessions === 0);
  });

  it("a tenant member opens it too (access is decided on A, as for a local console)", async () => {
    const s = ssh(owned.id, { token: tokens.tenantMember });
    await s.see(`connected to ${owned.id}`);
    s.kill();
    await s.exited;
    await eventually("B's relay to metal-bmc ends", () => owned.sim.serial.attachments === 0);
  });

  it("the machine's side ending the console ends the user's ssh on A", async () => {
    const s = ssh(owned.id, { token: tokens.owner });
    await s.see(`connected to ${owned.id}`);
    await eventually("attached", () => owned.sim.serial.attachments === 1);
    owned.sim.serial.hangup();
    await s.ends();
    expect(s.seen.out).toContain(`metal-console: the console of machine "${owned.id}" ended`);
    await eventually("A's console ends", () => a.console!.sessions === 0);
  });

  it("refuses on A what A refuses locally: a project without the machine gets the outsider's answer, and B is never asked", async () => {
    const stranger = (await a.client(AdminTokens, a.adminToken).create({ subject: "paula", roles: { projectRoles: { pa: ProjectRole.OWNER } } })).secret;
    const opened = owned.sim.serial.opened;
    const err = await refusedConsole(target(), owned.id, { key, token: stranger });
    expect(err).toContain('the token of "paula" is not one of a member of project "pb"');
    expect(owned.sim.serial.opened).toBe(opened);
  });
});

describe("ReplicaService.Console takes only another replica's credential", () => {
  it("refuses tenant, operator admin and infra tokens (PermissionDenied) and a call without a credential (Unauthenticated), before opening anything", async () => {
    const m = await machineWithConsole();
    const open = { partition: "p1", machineId: m.id };
    for (const [who, token] of [
      ["project member", tokens.owner],
      ["tenant member", tokens.tenantMember],
      ["operator admin", tokens.admin],
      ["infra token of the partition", tokens.infra],
    ] as const) {
      const err = await internalConsole(token, open);
      expect(err, who).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code, who).toBe(Code.PermissionDenied);
      expect((err as ConnectError).rawMessage, who).toContain("only the control plane's replicas may call this method");
    }
    for (const token of [undefined, "not-a-token"]) {
      const err = await internalConsole(token, open);
      expect((err as ConnectError).code, String(token)).toBe(Code.Unauthenticated);
    }
    expect(m.sim.serial.opened).toBe(0);
  });

  it("lets a replica credential in, and the credential is worth nothing on the public API", async () => {
    const m = await machineWithConsole();
    const credential = await (await createReplicaCredentials(a.app.db, a.id)).current();
    const first = (await internalConsole(credential, { partition: "p1", machineId: m.id })) as { kind?: { case?: string } };
    expect(first.kind?.case).toBe("opened");
    await eventually("B's relay to metal-bmc ends with the call", () => m.sim.serial.opened === 1 && m.sim.serial.attachments === 0);
    // Past the gate, bad input is the handler's answer.
    const bad = await internalConsole(credential, { partition: "p1", machineId: "not-a-uuid" });
    expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
    await expect(b.client(MachineService, credential).list({ project: "pb" })).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(b.client(AdminMachineService, credential).get({ id: m.id })).rejects.toMatchObject({ code: Code.Unauthenticated });
  });
});

describe("when B's metal-bmc session ends", () => {
  it("A's console ends with the reason, and a new console is refused: no metal-bmc of the partition on any replica", async () => {
    const m = await allocated();
    const s = ssh(m.id, { token: tokens.owner });
    await s.see(`connected to ${m.id}`);
    await stopAgent!();
    stopAgent = undefined;
    expect(await s.ends()).toBe(1);
    expect(s.seen.out).toMatch(new RegExp(`metal-console: the console of machine "${m.id}" ended: (the session of metal-bmc "bmc-b" \\(partition "p1"\\) ended|console relay cancelled)`));
    await eventually("B's row is gone", async () => (await consoleRouteRepository.routesOf(a.app.db, "p1", 30_000, a.id)).length === 0);
    const err = await refusedConsole(target(), m.id, { key, token: tokens.owner });
    expect(err).toContain(`cannot open the console of machine "${m.id}": no metal-bmc of partition "p1" is connected to this replica or to any other replica of the control plane`);
  });
});

describe("when replica B goes away", () => {
  it("A's console ends with a message naming B", async () => {
    // A metal-bmc on B again (directly: the proxy's turn is not this test's business).
    stopAgent = runBmcAgent({ url: b.url, token: tokens.infra, agent: "bmc-b2", dir, leaseFile, sims }).stop;
    await eventually("metal-bmc's session on B", () => b.app.relayBroker.agentsOf("p1").length > 0);
    await eventually("B's row for it", async () => (await consoleRouteRepository.routesOf(a.app.db, "p1", 30_000, a.id)).some((r) => r.replicaId === b.id) || undefined);
    const m = await allocated();
    const s = ssh(m.id, { token: tokens.owner });
    await s.see(`connected to ${m.id}`);
    // Every connection of B is cut at once, as when its process dies.
    await b.listener.close(0);
    expect(await s.ends()).toBe(1);
    expect(s.seen.out).toContain(`metal-console: the console of machine "${m.id}" ended: the connection to replica "${b.id}" failed`);
    await eventually("A's console ends", () => a.console!.sessions === 0);
  });
});
