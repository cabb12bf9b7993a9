import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import { SimBmcs } from "../../edge/sim/bmc.js";
import { ConnectionService, DaemonKind } from "../../gen/metal/admin/v1/connection_pb.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Issue 12 item 7: metal-bmc sessions are known by partition AND name. The
 * default agent name is the host name, so same-named metal-bmcs of two
 * partitions are normal, and an infra token of one partition must not end
 * another partition's session (nor the consoles open through it) by using
 * its agent's name.
 */
let server: TestServer;
let fixture: PartitionFixture;
let dir: string;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  await server.client(AdminPartitions, server.adminToken).create({ id: "p2" });
  dir = await mkdtemp(join(tmpdir(), "bmc-sessions-"));
});

afterAll(async () => {
  for (const stop of stops) await stop();
  await fixture?.stopAll();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A real metal-bmc of `partition` named `name`, on simulated BMCs, with test timings. */
async function startAgent(partition: string, name: string, token: string, sims: SimBmcs): Promise<BmcAgent> {
  const leaseFile = join(dir, `${partition}-leases`);
  if (sims.machines.size > 0) await sims.writeLeases(leaseFile);
  else await writeFile(leaseFile, "");
  const agent = new BmcAgent({
    transport: createTransport({ baseUrl: server.url, protocol: "grpc", token }),
    partition,
    agent: name,
    leaseFile,
    stateDir: join(dir, `${partition}-state`),
    adapter: sims,
    credentials: { user: "ADMIN", password: "ADMIN", interface: "lanplus", port: 623 },
    timing: { pollMs: 100, fullReportMs: 2_000, heartbeatMs: 100, idleMs: 3_000, backoff: { initialMs: 20, maxMs: 200 } },
  });
  const abort = new AbortController();
  const done = agent.run(abort.signal);
  stops.push(async () => {
    abort.abort();
    await done;
  });
  return agent;
}

describe("metal-bmc sessions of two partitions with the same agent name", () => {
  it("both stand: the second neither ends the first nor its consoles, and both are listed", async () => {
    const sims1 = new SimBmcs();
    const m = sims1.add({ uuid: randomUUID(), ip: "10.41.0.5", mac: "aa:bb:cc:41:00:05" });
    const first = await startAgent("p1", "bmc-host", fixture.infraToken, sims1);
    const admin = server.client(AdminMachineService, server.adminToken);
    await eventually("the report of the p1 machine", async () => (await admin.get({ id: m.uuid }).catch(() => undefined))?.machine?.bmc?.address);
    const broker = server.app.relayBroker;
    await eventually("the p1 metal-bmc offers relays", () => broker.agentsOf("p1").includes("bmc-host"));
    const console1 = await broker.openConsole("p1", m.uuid);
    let text = "";
    let ended = false;
    console1.onData((d) => (text += new TextDecoder().decode(d)));
    console1.onClose(() => (ended = true));
    await eventually("the p1 console's boot log", () => text.includes("Welcome to metal sim"));
    expect(first.sessions).toBe(1);

    // Partition 2's infra token, partition 2's metal-bmc, partition 1's agent name.
    const p2Token = (await server.client(AdminTokens, server.adminToken).create({ subject: "p2-agents", roles: { infraPartition: "p2" } })).secret;
    const second = await startAgent("p2", "bmc-host", p2Token, new SimBmcs());
    const connections = server.client(ConnectionService, server.adminToken);
    const listed = async () => (await connections.list({ kind: DaemonKind.BMC })).connections.map((c) => `${c.partition}/${c.id}`).sort();
    await eventually("both sessions listed", async () => second.sessions === 1 && JSON.stringify(await listed()) === JSON.stringify(["p1/bmc-host", "p2/bmc-host"]));

    // Partition 1's session still works after the second one stood: a command and the open console go through it.
    const led = (await admin.bMCCommand({ id: m.uuid, command: BmcCommand.LED_ON })).command!;
    await eventually("the p1 command done", async () => (await admin.commands({ id: m.uuid })).commands.find((c) => c.id === led.id)?.status === BmcCommandStatus.DONE);
    console1.write("echo still here\r");
    await eventually("the p1 console answers", () => text.includes("\r\nstill here\r\n"));
    expect(ended).toBe(false);
    expect(first.sessions).toBe(1);
    expect(second.sessions).toBe(1);
    expect(await listed()).toEqual(["p1/bmc-host", "p2/bmc-host"]);
    expect(broker.agentsOf("p1")).toEqual(["bmc-host"]);
    console1.close();
  });
});
