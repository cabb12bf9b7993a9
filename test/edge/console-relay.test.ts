import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BmcAgent } from "../../edge/bmc/agent.js";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { BMCService } from "../../gen/metal/infra/v1/bmc_pb.js";
import { ConsoleService, type ConsoleServiceRelayRequestSchema } from "../../gen/metal/infra/v1/console_pb.js";
import { type ConsoleSession, UNDATED_OUTPUT_NOTICE } from "../../server/sessions/console/relay-broker.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let fixture: PartitionFixture;
let dir: string;
let leaseFile: string;
const sims = new SimBmcs();

/** Ends the agent's BMC session (only that call, not its relays), as a broken connection would. */
let killSession = new AbortController();
const killable: Interceptor = (next) => (req) => (req.method.name === "Session" ? next({ ...req, signal: AbortSignal.any([req.signal, killSession.signal]) }) : next(req));

let agent: BmcAgent;
let stopAgent: () => Promise<void>;

function startAgent(): void {
  const run = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-console", dir, leaseFile, sims, interceptors: [killable] });
  agent = run.agent;
  stopAgent = run.stop;
}

let ip = 10;
/** A simulated machine whose BMC metal-bmc has found and reported. */
async function reportedSim(): Promise<SimMachineBmc> {
  const n = ip++;
  const m = sims.add({ uuid: randomUUID(), ip: `10.2.0.${n}`, mac: `aa:bb:cc:00:02:${n.toString(16).padStart(2, "0")}` });
  await sims.writeLeases(leaseFile);
  const admin = server.client(AdminMachineService, server.adminToken);
  await eventually(`report of ${m.uuid}`, async () => (await admin.get({ id: m.uuid }).catch(() => undefined))?.machine?.bmc?.address);
  return m;
}

/** Everything the console printed so far, and whether (and why) it ended. */
function watch(c: ConsoleSession) {
  const seen = { text: "", ended: false, reason: undefined as Error | undefined };
  const dec = new TextDecoder();
  c.onData((d) => (seen.text += dec.decode(d)));
  c.onClose((r) => {
    seen.ended = true;
    seen.reason = r;
  });
  return seen;
}

const broker = () => server.app.relayBroker;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "console-relay-test-"));
  leaseFile = join(dir, "dhcpd.leases");
  startAgent();
  await eventually("metal-bmc offers relays", () => broker().agentsOf("p1").includes("bmc-console"));
});

afterAll(async () => {
  fixture?.stopAll();
  await stopAgent?.();
  await rm(dir, { recursive: true, force: true });
});

describe("console relay: broker -> BMC session -> metal-bmc -> ConsoleService.Relay -> simulated serial console", () => {
  it("shows the boot log, carries typed input and the answer, forwards window sizes, and a close reaches the machine's console", async () => {
    const m = await reportedSim();
    const c = await broker().openConsole("p1", m.uuid);
    expect(c).toMatchObject({ partition: "p1", machineId: m.uuid, closed: false });
    const seen = watch(c);
    await eventually("the boot log", () => seen.text.includes("Welcome to metal sim"));
    expect(seen.text).toContain("Linux version 6.1.0-sim");
    expect(seen.text).toMatch(/root@sim-[0-9a-f]{8}:~# $/);
    expect(m.serial.attachments).toBe(1);

    c.resize(120, 40);
    c.write("echo hello through the relay\r");
    await eventually("the answer", () => seen.text.includes("\r\nhello through the relay\r\n"));
    // The typed line was echoed before the answer, and a fresh prompt follows it.
    expect(seen.text).toContain("echo hello through the relay\r\nhello through the relay\r\nroot@");
    expect(m.serial.typed).toBe("echo hello through the relay\r");
    expect(m.serial.windowSizes).toEqual([{ columns: 120, rows: 40 }]);

    c.close();
    expect(c.closed).toBe(true);
    expect(seen).toMatchObject({ ended: true, reason: undefined });
    await eventually("the sim sees the close", () => m.serial.attachments === 0 && m.serial.closed === 1);
    await eventually("metal-bmc's relay ends", () => agent.consoleRelays === 0);
    // Writes after the end go nowhere: a console opened afterwards carries its own input, and only that, to the machine.
    c.write("ignored\r");
    const next = await broker().openConsole("p1", m.uuid);
    next.write("next\r");
    await eventually("the next console's input", () => m.serial.typed.includes("next\r"));
    expect(m.serial.typed).toBe("echo hello through the relay\rnext\r");
    next.close();
    await eventually("metal-bmc's relay ends again", () => agent.consoleRelays === 0);
  });

  it("a console opened with outputSince shows only what the machine printed after it: the replayed boot log is withheld, live output is not", async () => {
    const m = await reportedSim();
    // The simulated machine booted when it was added; its BMC replays that boot log to every attachment.
    expect(m.serial.scrollback).toContain("Welcome to metal sim");
    const since = new Date();
    const c = await broker().openConsole("p1", m.uuid, { outputSince: since });
    const seen = watch(c);
    c.write("echo after the allocation\r");
    await eventually("the answer", () => seen.text.includes("\r\nafter the allocation\r\n"));
    expect(seen.text).not.toContain("Welcome to metal sim");
    expect(c.withheldBytes).toBe(new TextEncoder().encode(m.serial.scrollback).length - new TextEncoder().encode(seen.text).length);
    c.close();
    await eventually("metal-bmc's relay ends", () => agent.consoleRelays === 0);
  });

  it("several consoles at once, each with its own machine", async () => {
    const [a, b] = [await reportedSim(), await reportedSim()];
    const [ca, cb] = await Promise.all([broker().openConsole("p1", a.uuid), broker().openConsole("p1", b.uuid)]);
    const [sa, sb] = [watch(ca), watch(cb)];
    ca.write("hostname\r");
    cb.write("uname\r");
    await eventually("both answers", () => sa.text.includes(`\r\nsim-${a.uuid.slice(0, 8)}\r\n`) && sb.text.includes("\r\nLinux\r\n"));
    expect(sb.text).not.toContain(`sim-${a.uuid.slice(0, 8)}\r\n`);
    ca.close();
    cb.close();
    await eventually("both closed", () => a.serial.attachments === 0 && b.serial.attachments === 0);
  });

  it("the machine's side ending the console ends the session", async () => {
    const m = await reportedSim();
    const c = await broker().openConsole("p1", m.uuid);
    const seen = watch(c);
    await eventually("output", () => seen.text.includes("Welcome"));
    m.serial.hangup();
    await eventually("the session ends", () => seen.ended);
    expect(c.closed).toBe(true);
    await eventually("metal-bmc's relay ends", () => agent.consoleRelays === 0);
  });

  it("fails clearly: bad id, unknown machine, a partition without metal-bmc here, a BMC that does not answer", async () => {
    await expectCode(broker().openConsole("p1", "not-a-uuid"), Code.InvalidArgument, "machine_id");
    const unknown = randomUUID();
    await expectCode(broker().openConsole("p1", unknown), Code.NotFound, unknown);
    const err = await expectCode(broker().openConsole("p2", randomUUID()), Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/no metal-bmc of partition "p2" is connected to this replica .*other replicas are not supported/);

    // Known to the control plane, but its BMC is not one metal-bmc can reach.
    const lost = randomUUID();
    await server.client(BMCService, fixture.infraToken).report({ partition: "p1", reports: [{ machineId: lost, address: "10.9.9.9:623", user: "ADMIN", password: "ADMIN", interface: "lanplus" }] });
    const e2 = await expectCode(broker().openConsole("p1", lost), Code.FailedPrecondition);
    expect(e2.rawMessage).toMatch(new RegExp(`metal-bmc could not open the console of machine "${lost}": BMC 10\\.9\\.9\\.9:623 does not answer`));
    // A machine without any BMC data.
    const bare = randomUUID();
    await server.client(BMCService, fixture.infraToken).report({ partition: "p1", reports: [{ machineId: bare }] });
    await expectCode(broker().openConsole("p1", bare), Code.FailedPrecondition, "no BMC address");
    expect(agent.consoleRelays).toBe(0);
  });

  it("killing metal-bmc's session ends an open console; after the reconnect consoles open again", async () => {
    const m = await reportedSim();
    const c = await broker().openConsole("p1", m.uuid);
    const seen = watch(c);
    await eventually("output", () => seen.text.includes("Welcome"));
    const sessions = agent.sessions;
    killSession.abort();
    killSession = new AbortController();
    await eventually("the console ends", () => seen.ended);
    expect(seen.reason).toBeInstanceOf(ConnectError);
    expect((seen.reason as ConnectError).code).toBe(Code.Unavailable);
    expect(seen.reason!.message).toContain('metal-bmc "bmc-console"');
    await eventually("the sim sees the close", () => m.serial.attachments === 0);
    await eventually("reconnected", () => agent.sessions > sessions && broker().agentsOf("p1").length === 1);

    const again = await broker().openConsole("p1", m.uuid);
    const s2 = watch(again);
    again.write("echo back\r");
    await eventually("the answer on the new session", () => s2.text.includes("\r\nback\r\n"));
    again.close();
  });

  it("production times are read on the server's clock (metal-bmc's clock an hour behind), and undated output is withheld with a notice", async () => {
    type Req = MessageInitShape<typeof ConsoleServiceRelayRequestSchema>;
    // A metal-bmc of partition p1 playing by hand, newest session of the partition, so it is the one asked.
    const asked: string[] = [];
    const detach = broker().attachAgent("p1", "hand-played", async (relayId) => void asked.push(relayId));
    try {
      const machineId = randomUUID();
      const since = new Date();
      const opening = broker().openConsole("p1", machineId, { outputSince: since });
      await eventually("the ask", () => asked.length === 1);
      const hour = 3_600_000;
      const agentClock = (serverMs: number) => timestampFromDate(new Date(serverMs - hour));
      let finish!: () => void;
      const finished = new Promise<void>((r) => (finish = r));
      async function* requests(): AsyncGenerator<Req> {
        yield { partition: "p1", kind: { case: "open", value: { relayId: asked[0]!, machineId, sentAt: agentClock(Date.now()) } } };
        const data = (text: string) => ({ case: "data" as const, value: new TextEncoder().encode(text) });
        yield { kind: data("before the allocation\r\n"), producedAt: agentClock(since.getTime() - 60_000) };
        yield { kind: data("undated\r\n") };
        yield { kind: data("after the allocation\r\n"), producedAt: agentClock(since.getTime() + 60_000) };
        await finished;
      }
      const responses = server.grpcClient(ConsoleService, fixture.infraToken).relay(requests());
      const draining = (async () => {
        for await (const _ of responses);
      })().catch(() => {});
      const c = await opening;
      const seen = watch(c);
      await eventually("the dated output after the allocation", () => seen.text.includes("after the allocation"));
      expect(seen.text).toBe(`${UNDATED_OUTPUT_NOTICE}after the allocation\r\n`);
      expect(c.withheldBytes).toBe("before the allocation\r\n".length + "undated\r\n".length);
      finish();
      await eventually("the relay ends", () => seen.ended);
      await draining;
    } finally {
      detach();
    }
    expect(broker().agentsOf("p1")).toEqual(["bmc-console"]);
  });

  it("the Relay contract: open first, only relays that were asked for, the token's partition only", async () => {
    type Req = MessageInitShape<typeof ConsoleServiceRelayRequestSchema>;
    const relay = (messages: Req[]) => {
      async function* requests(): AsyncGenerator<Req> {
        yield* messages;
      }
      return server.grpcClient(ConsoleService, fixture.infraToken).relay(requests())[Symbol.asyncIterator]().next();
    };
    await expectCode(relay([{ partition: "p1", kind: { case: "data", value: new Uint8Array([65]) } }]), Code.InvalidArgument, "open");
    const stray = randomUUID();
    await expectCode(relay([{ partition: "p1", kind: { case: "open", value: { relayId: stray, machineId: randomUUID() } } }]), Code.NotFound, stray);
    await expectCode(relay([{ partition: "p2", kind: { case: "open", value: { relayId: stray, machineId: randomUUID() } } }]), Code.PermissionDenied);
  });
});
