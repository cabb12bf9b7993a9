import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { ConsoleService } from "../../gen/metal/api/v1/console_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { ReplicaService } from "../../gen/metal/internal/v1/replica_pb.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { type SharedDbReplica as Replica, startSharedDbReplicas } from "../helpers/shared-db-replicas.js";

// Two replicas on one database, as behind an L4 balancer that sends each HTTP/1.1 connection to either:
// a browser's Attach stream lands on A, some of its Input calls on B.
let a: Replica;
let b: Replica;
let stopPair: () => Promise<void>;
let fixture: PartitionFixture;
let dir: string;
let stopAgent: (() => Promise<void>) | undefined;
const sims = new SimBmcs();
const tokens = { editor: "", editor2: "" };
const enc = new TextEncoder();
const dec = new TextDecoder();

beforeAll(async () => {
  const pair = await startSharedDbReplicas(["replica-a", "replica-b"], { options: () => ({ consolePollMs: 200 }), teardown: "manual" });
  [a, b] = pair.replicas as [Replica, Replica];
  stopPair = pair.stop;
  fixture = await setUpPartition(a);
  dir = await mkdtemp(join(tmpdir(), "browser-console-replicas-"));
  const admin = a.client(AdminTokens, a.adminToken);
  tokens.editor = (await admin.create({ subject: "olga", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tokens.editor2 = (await admin.create({ subject: "otto", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  stopAgent = runBmcAgent({ url: a.url, token: fixture.infraToken, agent: "bmc-a", dir, leaseFile: join(dir, "dhcpd.leases"), sims }).stop;
  await eventually("metal-bmc's session on A", () => a.app.relayBroker.agentsOf("p1").length > 0);
});

afterAll(async () => {
  fixture?.stopAll();
  await stopAgent?.();
  await stopPair?.();
  await rm(dir, { recursive: true, force: true });
});

async function allocated(): Promise<{ id: string; sim: SimMachineBmc }> {
  const booted = await fixture.bootMachine("r1");
  const sim = sims.add({ uuid: booted.id, ip: "10.6.0.10", mac: "aa:bb:cc:00:06:10" });
  await sims.writeLeases(join(dir, "dhcpd.leases"));
  await eventually(`the BMC report of ${booted.id}`, async () => (await a.client(AdminMachineService, a.adminToken).get({ id: booted.id })).machine?.bmc?.address);
  await a.client(MachineService, tokens.editor).create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "replicas", networks: [fixture.primary.pb], machineId: booted.id });
  return { id: booted.id, sim };
}

describe("a browser console attached on replica A, its Input reaching replica B", () => {
  it("B passes the Input on to A (ReplicaService.ConsoleInput); another token's Input finds nothing there either", async () => {
    const m = await allocated();
    const abort = new AbortController();
    let sessionId = "";
    let text = "";
    void (async () => {
      for await (const r of a.client(ConsoleService, tokens.editor).attach({ machineId: m.id, project: "pb" }, { signal: abort.signal })) {
        if (r.kind.case === "opened") sessionId = r.kind.value.sessionId;
        if (r.kind.case === "data") text += dec.decode(r.kind.value);
      }
    })().catch(() => {});
    await eventually("the opened message", () => sessionId || undefined);

    await b.client(ConsoleService, tokens.editor).input({ sessionId, project: "pb", data: enc.encode("uname\r"), resize: { columns: 90, rows: 33 } });
    await eventually("the answer through A", () => text.includes("uname\r\nLinux\r\n"));
    expect(m.sim.serial.typed).toContain("uname\r");
    expect(m.sim.serial.windowSizes.at(-1)).toEqual({ columns: 90, rows: 33 });

    const typed = m.sim.serial.typed;
    const foreign = await b
      .client(ConsoleService, tokens.editor2)
      .input({ sessionId, project: "pb", data: enc.encode("reboot\r") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(foreign).toMatchObject({ code: Code.NotFound, rawMessage: `console session "${sessionId}" not found (it ended, or was attached with another token)` });
    expect(m.sim.serial.typed).toBe(typed);

    // The internal method takes only a replica's credential: a user's token is refused before anything is read.
    const direct = await a
      .client(ReplicaService, tokens.editor)
      .consoleInput({ sessionId, tokenId: "whatever", project: "pb", data: enc.encode("x") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(direct).toMatchObject({ code: Code.PermissionDenied });

    abort.abort();
    await eventually("the console to close", () => m.sim.serial.attachments === 0);
    const late = await b
      .client(ConsoleService, tokens.editor)
      .input({ sessionId, project: "pb", data: enc.encode("x") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(late).toMatchObject({ code: Code.NotFound });
  });
});
