import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { ConsoleService, type ConsoleServiceAttachRequestSchema } from "../../gen/metal/api/v1/console_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { createLogger } from "../../server/logger.js";
import type { ConsoleSession } from "../../server/sessions/console/relay-broker.js";
import { type BrowserConsoleLimits, BrowserConsoles } from "../../server/usecases/console/browser-consoles.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";

let server: TestServer;
let stopServer: () => Promise<void>;
let fixture: PartitionFixture;
let dir: string;
let leaseFile: string;
let stopAgent: () => Promise<void>;
const sims = new SimBmcs();
const tokens = { editor: "", editor2: "", viewer: "", otherEditor: "", stranger: "", admin: "" };
const dec = new TextDecoder();
const enc = new TextEncoder();

let ip = 10;
/** A machine booted by the fixture (playing metal-hammer) whose simulated BMC metal-bmc has reported. */
async function machineWithConsole(): Promise<{ id: string; sim: SimMachineBmc }> {
  const booted = await fixture.bootMachine("r1");
  const n = ip++;
  const sim = sims.add({ uuid: booted.id, ip: `10.4.0.${n}`, mac: `aa:bb:cc:00:04:${n.toString(16).padStart(2, "0")}` });
  await sims.writeLeases(leaseFile);
  const admin = server.client(AdminMachineService, server.adminToken);
  await eventually(`the BMC report of ${booted.id}`, async () => (await admin.get({ id: booted.id })).machine?.bmc?.address);
  return { id: booted.id, sim };
}

async function allocated(project: "pa" | "pb" = "pb"): Promise<{ id: string; sim: SimMachineBmc }> {
  const m = await machineWithConsole();
  await server.client(MachineService, server.adminToken).create({
    project,
    partition: "p1",
    size: "s1",
    image: "debian-12",
    name: `browser-${m.id.slice(0, 4)}`,
    networks: [fixture.primary[project]],
    machineId: m.id,
  });
  return m;
}

/** An Attach stream read into one transcript, as xterm.js would show it. */
interface Attached {
  text: string;
  sessionId: string;
  ended: string;
  error: ConnectError | undefined;
  done: boolean;
  abort: AbortController;
}

type AttachInit = MessageInitShape<typeof ConsoleServiceAttachRequestSchema>;

function attach(token: string, req: AttachInit, client = server.client(ConsoleService, token)): Attached {
  const a: Attached = { text: "", sessionId: "", ended: "", error: undefined, done: false, abort: new AbortController() };
  void (async () => {
    try {
      for await (const m of client.attach(req, { signal: a.abort.signal })) {
        if (m.kind.case === "opened") a.sessionId = m.kind.value.sessionId;
        else if (m.kind.case === "data") a.text += dec.decode(m.kind.value, { stream: true });
        else if (m.kind.case === "ended") a.ended = m.kind.value.reason;
      }
    } catch (err) {
      a.error = ConnectError.from(err);
    } finally {
      a.done = true;
    }
  })();
  return a;
}

/** The refusal of an Attach (the stream must fail before it opens). */
async function refusal(token: string, req: AttachInit): Promise<ConnectError> {
  const a = attach(token, req);
  await eventually("the Attach to end", () => a.done);
  expect(a.sessionId).toBe("");
  return a.error!;
}

beforeAll(async () => {
  ({ server, stop: stopServer } = await launchServer({ consolePollMs: 200, env: { METAL_DB_POOL_SIZE: "10", MASTERDATA_DB_POOL_SIZE: "4" }, dropInBackground: true }));
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "browser-console-test-"));
  leaseFile = join(dir, "dhcpd.leases");
  const admin = server.client(AdminTokens, server.adminToken);
  tokens.admin = server.adminToken;
  tokens.editor = (await admin.create({ subject: "olga", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tokens.editor2 = (await admin.create({ subject: "otto", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
  tokens.viewer = (await admin.create({ subject: "vera", roles: { projectRoles: { pb: ProjectRole.VIEWER } } })).secret;
  tokens.otherEditor = (await admin.create({ subject: "paula", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
  tokens.stranger = (await admin.create({ subject: "sam", roles: { projectRoles: { px: ProjectRole.OWNER } } })).secret;
  stopAgent = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-browser-console", dir, leaseFile, sims }).stop;
  await eventually("metal-bmc offers relays", () => server.app.relayBroker.agentsOf("p1").length > 0);
});

afterAll(async () => {
  fixture?.stopAll();
  await stopAgent?.();
  await stopServer?.();
  await rm(dir, { recursive: true, force: true });
});

let owned: { id: string; sim: SimMachineBmc };
let free: { id: string; sim: SimMachineBmc };
let others: { id: string; sim: SimMachineBmc };

describe("the serial console in the browser (metal.api.v1.ConsoleService)", () => {
  beforeAll(async () => {
    owned = await allocated("pb");
    others = await allocated("pa");
    free = await machineWithConsole();
  });

  it("an editor attaches over Connect on HTTP/1.1 (as a browser does), types a line that reaches the machine and sees its answer", async () => {
    const console = server.client(ConsoleService, tokens.editor);
    const a = attach(tokens.editor, { machineId: owned.id, project: "pb", columns: 120, rows: 40 }, console);
    await eventually("the opened message", () => a.sessionId || undefined);
    expect(a.sessionId).toMatch(/^[A-Za-z0-9_-]{22}\.[0-9a-f]{12}$/);
    await eventually("the initial size on the machine", () => owned.sim.serial.windowSizes.some((w) => w.columns === 120 && w.rows === 40));

    // Keystrokes arrive batched, as the component sends them.
    await console.input({ sessionId: a.sessionId, project: "pb", data: enc.encode("una") });
    await console.input({ sessionId: a.sessionId, project: "pb", data: enc.encode("me\r"), resize: { columns: 100, rows: 30 } });
    await eventually("the answer", () => a.text.includes("uname\r\nLinux\r\n"));
    expect(owned.sim.serial.typed).toContain("uname\r");
    expect(owned.sim.serial.windowSizes.at(-1)).toEqual({ columns: 100, rows: 30 });

    // Closing the tab (cancelling the call) closes the console on the machine's side.
    const attachments = owned.sim.serial.attachments;
    a.abort.abort();
    await eventually("the console to close", () => owned.sim.serial.attachments < attachments);
    const after = await console.input({ sessionId: a.sessionId, project: "pb", data: enc.encode("x") }).catch((e: unknown) => ConnectError.from(e));
    expect(after).toMatchObject({ code: Code.NotFound });
  });

  it("works over gRPC (HTTP/2) too", async () => {
    const client = server.grpcClient(ConsoleService, tokens.editor);
    const a = attach(tokens.editor, { machineId: owned.id, project: "pb" }, client);
    await eventually("the opened message", () => a.sessionId || undefined);
    await client.input({ sessionId: a.sessionId, project: "pb", data: enc.encode("hostname\r") });
    await eventually("the answer", () => a.text.includes("hostname\r\n"));
    a.abort.abort();
    await eventually("the stream to end", () => a.done);
  });

  it("a viewer, a stranger and another project's editor naming the project are refused before the machine is looked at", async () => {
    for (const token of [tokens.viewer, tokens.stranger, tokens.otherEditor]) {
      const err = await refusal(token, { machineId: owned.id, project: "pb" });
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toContain('needs project editor of "pb"');
    }
    expect((await refusal("not-a-token", { machineId: owned.id, project: "pb" })).code).toBe(Code.Unauthenticated);
  });

  it("outsiders get one answer, NotFound in the words of their own request, for unknown, free and another project's machines", async () => {
    const unknown = "0b8f1ab2-58f4-4a8b-9d7a-000000000042";
    const answers = await Promise.all([unknown, free.id, owned.id].map((id) => refusal(tokens.otherEditor, { machineId: id, project: "pa" })));
    for (const [i, id] of [unknown, free.id, owned.id].entries()) {
      expect(answers[i]!.code).toBe(Code.NotFound);
      expect(answers[i]!.rawMessage).toBe(`machine "${id}" not found in project "pa"`);
    }
    // The editor of pb naming a machine of pa is an outsider there, too.
    expect((await refusal(tokens.editor, { machineId: others.id, project: "pb" })).rawMessage).toBe(`machine "${others.id}" not found in project "pb"`);
    expect((await refusal(tokens.editor, { machineId: "not-a-uuid", project: "pb" })).code).toBe(Code.InvalidArgument);
  });

  it("Input from another token, even of an editor of the same project, finds no session, and nothing reaches the machine", async () => {
    const a = attach(tokens.editor, { machineId: owned.id, project: "pb" });
    await eventually("the opened message", () => a.sessionId || undefined);
    const typed = owned.sim.serial.typed;
    const foreign = await server
      .client(ConsoleService, tokens.editor2)
      .input({ sessionId: a.sessionId, project: "pb", data: enc.encode("reboot\r") })
      .catch((e: unknown) => ConnectError.from(e));
    const unknown = await server
      .client(ConsoleService, tokens.editor2)
      .input({ sessionId: `${"A".repeat(22)}.${a.sessionId.split(".")[1]}`, project: "pb", data: enc.encode("x") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(foreign).toMatchObject({ code: Code.NotFound });
    expect(unknown).toMatchObject({ code: Code.NotFound });
    expect((foreign as ConnectError).rawMessage.replace(a.sessionId, "ID")).toBe((unknown as ConnectError).rawMessage.replace(/"[^"]+"/, '"ID"'));
    // Another project's editor cannot reach it either (NotFound, or refused for the project it names).
    const other = await server
      .client(ConsoleService, tokens.otherEditor)
      .input({ sessionId: a.sessionId, project: "pa", data: enc.encode("x") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(other).toMatchObject({ code: Code.NotFound });
    expect(owned.sim.serial.typed).toBe(typed);
    a.abort.abort();
  });

  it("Input is bounded, and a session of a replica that is not live any more is NotFound", async () => {
    const a = attach(tokens.editor, { machineId: owned.id, project: "pb" });
    await eventually("the opened message", () => a.sessionId || undefined);
    const client = server.client(ConsoleService, tokens.editor);
    const big = await client.input({ sessionId: a.sessionId, project: "pb", data: new Uint8Array(4097) }).catch((e: unknown) => ConnectError.from(e));
    expect(big).toMatchObject({ code: Code.InvalidArgument });
    const elsewhere = await client.input({ sessionId: `${"A".repeat(22)}.000000000000`, project: "pb", data: enc.encode("x") }).catch((e: unknown) => ConnectError.from(e));
    expect(elsewhere).toMatchObject({ code: Code.NotFound });
    a.abort.abort();
  });

  it("an operator admin opens a free machine's console", async () => {
    const a = attach(tokens.admin, { machineId: free.id, project: "" });
    await eventually("the opened message", () => a.sessionId || undefined);
    await server.client(ConsoleService, tokens.admin).input({ sessionId: a.sessionId, project: "", data: enc.encode("echo hi\r") });
    await eventually("the answer", () => a.text.includes("hi\r\n"));
    a.abort.abort();
  });

  it("the stream ends with the reason when its token is revoked", async () => {
    const { token, secret } = await server.client(AdminTokens, server.adminToken).create({ subject: "rita", roles: { projectRoles: { pb: ProjectRole.EDITOR } } });
    const a = attach(secret, { machineId: owned.id, project: "pb" });
    await eventually("the opened message", () => a.sessionId || undefined);
    await server.client(AdminTokens, server.adminToken).revoke({ id: token!.id });
    await eventually("the stream to end", () => a.done);
    expect(a.error).toBeUndefined();
    expect(a.ended).toMatch(/^your token is no longer valid \(.+\); closing the console$/);
  });

  it("the stream ends with the reason when the machine is freed", async () => {
    const m = await allocated("pb");
    const a = attach(tokens.editor, { machineId: m.id, project: "pb" });
    await eventually("the opened message", () => a.sessionId || undefined);
    await server.client(MachineService, tokens.editor).delete({ id: m.id, project: "pb" });
    await eventually("the stream to end", () => a.done);
    expect(a.error).toBeUndefined();
    expect(a.ended).toBe(`machine "${m.id}" was freed; closing the console`);
    const late = await server
      .client(ConsoleService, tokens.editor)
      .input({ sessionId: a.sessionId, project: "pb", data: enc.encode("x") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(late).toMatchObject({ code: Code.NotFound });
  });
});

describe("BrowserConsoles' bounds (the use case on the test server's database, with a console that needs no metal-bmc)", () => {
  /** A console session that records what it is sent and never prints. */
  function fakeRelay(machineId: string): ConsoleSession & { written: string } {
    const closeListeners: ((r: Error | undefined) => void)[] = [];
    const relay = {
      relayId: "fake",
      partition: "p1",
      machineId,
      written: "",
      closed: false,
      withheldBytes: 0,
      write: (d: Uint8Array | string) => void (relay.written += typeof d === "string" ? d : dec.decode(d)),
      resize: () => {},
      onData: () => () => {},
      onClose: (l: (r: Error | undefined) => void) => (closeListeners.push(l), () => {}),
      close: () => {
        if (relay.closed) return;
        relay.closed = true;
        for (const l of closeListeners) l(undefined);
      },
    };
    return relay;
  }

  function consoles(limits: Partial<BrowserConsoleLimits>) {
    const relays: ReturnType<typeof fakeRelay>[] = [];
    const c = new BrowserConsoles({
      db: server.app.db,
      projects: { tenantOf: async () => "t", quotasOf: async () => ({}) },
      authority: server.app.authority,
      consoles: { openConsole: async (_p, id) => (relays.push(fakeRelay(id)), relays.at(-1)!) },
      log: createLogger("silent"),
      replicaId: "test-replica",
      limits,
    });
    return { c, relays };
  }

  it("counts consoles per subject and in total, and gives a place back when a console ends", async () => {
    const { c } = consoles({ perSubject: 1, total: 2 });
    const olga = await server.app.authority.verify(tokens.editor);
    const otto = await server.app.authority.verify(tokens.editor2);
    const req = { machineId: owned.id, project: "pb", columns: 0, rows: 0 };
    const first = new AbortController();
    await c.attach(olga, tokens.editor, req, first.signal);
    await expect(c.attach(olga, tokens.editor, req, new AbortController().signal)).rejects.toMatchObject({ code: Code.ResourceExhausted, rawMessage: expect.stringContaining('for "olga" (limit 1)') });
    await c.attach(otto, tokens.editor2, req, new AbortController().signal);
    const admin = await server.app.authority.verify(tokens.admin);
    await expect(c.attach(admin, tokens.admin, req, new AbortController().signal)).rejects.toMatchObject({ code: Code.ResourceExhausted, rawMessage: expect.stringContaining("on this server (limit 2)") });
    first.abort();
    expect(c.open).toBe(1);
    await c.attach(olga, tokens.editor, req, new AbortController().signal);
    c.closeAll("test over");
    expect(c.open).toBe(0);
  });

  it("a console without input or output for the idle timeout ends with the reason and takes no more input", async () => {
    const { c, relays } = consoles({ idleTimeoutMs: 300 });
    const olga = await server.app.authority.verify(tokens.editor);
    const events = await c.attach(olga, tokens.editor, { machineId: owned.id, project: "pb", columns: 0, rows: 0 }, new AbortController().signal);
    const seen: string[] = [];
    let sessionId = "";
    for await (const e of events) {
      if (e.kind === "opened") {
        sessionId = e.sessionId;
        await c.input(olga, { sessionId, project: "pb", data: enc.encode("ls\r") });
      }
      if (e.kind === "ended") seen.push(e.reason);
    }
    expect(relays[0]!.written).toBe("ls\r");
    expect(seen).toEqual(["no input or output for 300ms; closing the console"]);
    expect(relays[0]!.closed).toBe(true);
    await expect(c.input(olga, { sessionId, project: "pb", data: enc.encode("x") })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("without a way to reach the other replicas, Input for another replica's session is FailedPrecondition with a clear message", async () => {
    const { c } = consoles({});
    const olga = await server.app.authority.verify(tokens.editor);
    const elsewhere = c.input(olga, { sessionId: `${"A".repeat(22)}.000000000000`, project: "pb", data: enc.encode("x") });
    await expect(elsewhere).rejects.toMatchObject({ code: Code.FailedPrecondition, rawMessage: expect.stringContaining("held by another replica") });
  });
});
