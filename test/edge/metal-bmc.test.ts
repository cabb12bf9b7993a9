import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SimBmcs, type SimMachineBmc } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { BMCService, type BMCServiceSessionRequestSchema, type BMCServiceSessionResponse } from "../../gen/metal/infra/v1/bmc_pb.js";
import { runCommandExpiryJob } from "../../server/jobs/command-expiry.js";
import { bmcCommandRepository as bmcCommands } from "../../server/repositories/bmc-command-repository.js";
import { type RunningBmcAgent, runBmcAgent } from "../helpers/bmc-agent.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;
let dir: string;
const sims = new SimBmcs({ user: "ADMIN", password: "ADMIN" });
let leaseFile: string;

/** Ends the agent's current session from outside, as a broken connection would. */
let killSession = new AbortController();
const killable: Interceptor = (next) => (req) => {
  const kill = killSession.signal;
  return next({ ...req, signal: AbortSignal.any([req.signal, kill]) });
};

function startAgent(stateDir = join(dir, "state")): RunningBmcAgent {
  return runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-test", version: "test", dir, stateDir, leaseFile, sims, interceptors: [killable] });
}

let ip = 10;
async function addSim(uuid: string = randomUUID()): Promise<SimMachineBmc> {
  const n = ip++;
  const m = sims.add({ uuid, ip: `10.1.0.${n}`, mac: `aa:bb:cc:00:01:${n.toString(16).padStart(2, "0")}` });
  await sims.writeLeases(leaseFile);
  return m;
}

const admin = () => server.client(AdminMachineService, server.adminToken);
const commandsOf = async (id: string) => (await admin().commands({ id })).commands;

let running: RunningBmcAgent;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "metal-bmc-test-"));
  leaseFile = join(dir, "dhcpd.leases");
  running = startAgent();
});

afterAll(async () => {
  fixture.stopAll();
  await running?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("metal-bmc on simulated BMCs", () => {
  it("discovers BMCs from the lease file and reports them; changes are reported without being asked", async () => {
    const a = await addSim();
    const b = await addSim();
    for (const m of [a, b]) {
      const got = await eventually(`report of ${m.uuid}`, async () => {
        const r = await admin()
          .get({ id: m.uuid })
          .catch(() => undefined);
        return r?.machine?.bmc?.address ? r : undefined;
      });
      expect(got.machine?.partition).toBe("p1");
      expect(got.machine?.bmc).toMatchObject({ address: `${m.ip}:623`, mac: m.mac, powerState: "ON", version: "1.0.0-sim" });
      expect(got.machine?.bmc?.fru).toMatchObject({ board_mfg: "metal sim" });
      expect(got.bmcCredentials).toMatchObject({ user: "ADMIN", password: "ADMIN" });
    }
    // Someone presses the power button: the next poll notices.
    a.power = "OFF";
    await eventually("power off reported", async () => (await admin().get({ id: a.uuid })).machine?.bmc?.powerState === "OFF");
    a.power = "ON";
  });

  it("executes an admin BMC command once and acknowledges it", async () => {
    const m = await addSim();
    await eventually(
      "report",
      async () =>
        (
          await admin()
            .get({ id: m.uuid })
            .catch(() => undefined)
        )?.machine?.bmc?.address,
    );
    const off = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.POWER_OFF })).command!;
    const led = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.LED_ON, description: "replace disk 2" })).command!;
    await eventually("both done", async () => {
      const cs = await commandsOf(m.uuid);
      return [off.id, led.id].every((id) => cs.find((c) => c.id === id)?.status === BmcCommandStatus.DONE);
    });
    const cs = await commandsOf(m.uuid);
    expect(cs.find((c) => c.id === off.id)?.result).toBe("Chassis Power Control: Down/Off");
    expect(m.executed).toEqual(["POWER_OFF", "LED_ON"]);
    expect(m.power).toBe("OFF");
    expect(m.led).toBe("on");
    await eventually("power state reported", async () => (await admin().get({ id: m.uuid })).machine?.bmc?.powerState === "OFF");
    // Nothing runs again: a later command is carried out after them, and nothing was repeated before it.
    const ledOff = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.LED_OFF })).command!;
    await eventually("the later command done", async () => (await commandsOf(m.uuid)).find((c) => c.id === ledOff.id)?.status === BmcCommandStatus.DONE);
    expect(m.executed).toEqual(["POWER_OFF", "LED_ON", "LED_OFF"]);
  });

  it("a freed machine boots from PXE and is reset", async () => {
    const hammer = await fixture.bootMachine("r1");
    const m = await addSim(hammer.id);
    await eventually("report", async () => (await admin().get({ id: m.uuid })).machine?.bmc?.address);
    const editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
    const tenant = server.client(MachineService, editor);
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], machineId: hammer.id });
    await tenant.delete({ id: hammer.id, project: "pb" });
    await eventually("free commands done", async () => {
      const cs = await commandsOf(hammer.id);
      return cs.length === 3 && cs.every((c) => c.status === BmcCommandStatus.DONE);
    });
    expect(m.executed).toEqual(["LED_OFF", "BOOT_FROM_PXE", "RESET"]);
    expect(m).toMatchObject({ bootDevice: "pxe", resets: 1, led: "off", power: "ON" });
  });

  it("a session killed while a command runs: the command is delivered again, runs once, and its result arrives on the new session", async () => {
    const m = await addSim();
    await eventually(
      "report",
      async () =>
        (
          await admin()
            .get({ id: m.uuid })
            .catch(() => undefined)
        )?.machine?.bmc?.address,
    );
    let release!: () => void;
    sims.hold(m.uuid, new Promise<void>((r) => (release = r)));
    const sessionsBefore = running.agent.sessions;
    const duplicatesBefore = running.agent.duplicates;
    const cycle = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.CYCLE })).command!;
    await eventually("command reached the BMC", async () => m.received === 1);
    killSession.abort();
    killSession = new AbortController();
    await eventually("reconnected", async () => running.agent.sessions > sessionsBefore);
    // The reconnect delivered the still-pending command again; it is under way, so it is not started twice.
    await eventually("delivered again", async () => running.agent.duplicates > duplicatesBefore);
    expect(m.received).toBe(1);
    release();
    await eventually("done", async () => (await commandsOf(m.uuid)).find((c) => c.id === cycle.id)?.status === BmcCommandStatus.DONE);
    expect(m.executed).toEqual(["CYCLE"]);
  });

  it("an agent restarted after running a command but before the ack sends the stored result instead of running it again", async () => {
    const m = await addSim();
    await eventually(
      "report",
      async () =>
        (
          await admin()
            .get({ id: m.uuid })
            .catch(() => undefined)
        )?.machine?.bmc?.address,
    );
    // The agent stops (and its session with it) the moment the BMC has carried the command out.
    const stopping = new Promise<void>((resolve) => {
      const off = sims.onCommand((s) => {
        if (s.uuid !== m.uuid) return;
        off();
        killSession.abort();
        killSession = new AbortController();
        resolve(running.stop());
      });
    });
    const reset = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.RESET })).command!;
    await stopping;
    expect(m.executed).toEqual(["RESET"]);
    const pending = (await commandsOf(m.uuid)).find((c) => c.id === reset.id)!;
    expect(pending.status).toBe(BmcCommandStatus.PENDING);

    // Queued while no agent is connected.
    const on = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.POWER_ON })).command!;
    running = startAgent();
    await eventually("both done", async () => {
      const cs = await commandsOf(m.uuid);
      return [reset.id, on.id].every((id) => cs.find((c) => c.id === id)?.status === BmcCommandStatus.DONE);
    });
    expect((await commandsOf(m.uuid)).find((c) => c.id === reset.id)?.result).toBe("Chassis Power Control: Reset");
    expect(running.agent.duplicates).toBeGreaterThanOrEqual(1);
    expect(m.executed).toEqual(["RESET", "POWER_ON"]);
  });

  it("a result arriving after the command timed out does not change it", async () => {
    const m = await addSim();
    await eventually(
      "report",
      async () =>
        (
          await admin()
            .get({ id: m.uuid })
            .catch(() => undefined)
        )?.machine?.bmc?.address,
    );
    let release!: () => void;
    sims.hold(m.uuid, new Promise<void>((r) => (release = r)));
    const led = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.LED_ON })).command!;
    await eventually("command reached the BMC", async () => m.received === 1);
    // An agent of another partition cannot settle it.
    expect(await bmcCommands.complete(server.app.db, "p2", led.id, false, "foreign")).toBe(false);
    const expired = await runCommandExpiryJob(server.app.db, new Date(Date.now() + 60 * 60_000));
    expect(expired).toContain(led.id);
    release();
    await eventually("executed", async () => m.executed.length === 1);
    // A command given now is answered on the same session after the late result: once it is done, the late result was seen.
    const done = (await commandsOf(m.uuid)).length;
    const on = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.POWER_ON })).command!;
    await eventually("power on done", async () => (await commandsOf(m.uuid)).find((x) => x.id === on.id)?.status === BmcCommandStatus.DONE);
    const c = (await commandsOf(m.uuid)).find((x) => x.id === led.id)!;
    expect(c.status).toBe(BmcCommandStatus.TIMED_OUT);
    expect(c.result).toMatch(/timed out/);
    // The same holds for any late or repeated result, whoever sends it.
    expect(await bmcCommands.complete(server.app.db, "p1", led.id, true, "late")).toBe(false);
    expect(await bmcCommands.complete(server.app.db, "p1", on.id, false, "again")).toBe(false);
    expect((await commandsOf(m.uuid)).find((x) => x.id === on.id)).toMatchObject({ status: BmcCommandStatus.DONE, result: "Chassis Power Control: Up/On" });
    expect((await commandsOf(m.uuid)).length).toBe(done + 1);
  });

  it("the session contract: hello first, the token's partition only, pending commands with the BMC login on connect", async () => {
    type Req = MessageInitShape<typeof BMCServiceSessionRequestSchema>;
    const open = (messages: Req[], token = fixture.infraToken) => {
      const abort = new AbortController();
      async function* requests(): AsyncGenerator<Req> {
        yield* messages;
        // Keeps the request side open until the test is done with the session.
        await new Promise((r) => abort.signal.addEventListener("abort", r));
      }
      const responses = server.grpcClient(BMCService, token).session(requests(), { signal: abort.signal });
      return { it: responses[Symbol.asyncIterator](), abort };
    };
    const hello: Req = { partition: "p1", kind: { case: "hello", value: { agent: "raw" } } };

    const noHello = open([{ partition: "p1", kind: { case: "heartbeat", value: {} } }]);
    await expectCode(noHello.it.next(), Code.InvalidArgument, "hello");
    noHello.abort.abort();
    const foreign = open([{ ...hello, partition: "p2" }]);
    await expectCode(foreign.it.next(), Code.PermissionDenied);
    foreign.abort.abort();

    // Queued before the raw session connects (the real agent is stopped, so nothing else takes it).
    await running.stop();
    const m = await addSim();
    await server.client(BMCService, fixture.infraToken).report({
      partition: "p1",
      reports: [{ machineId: m.uuid, address: `${m.ip}:623`, user: "ADMIN", password: "bmc-Secret1", interface: "lanplus" }],
    });
    const queued = (await admin().bMCCommand({ id: m.uuid, command: BmcCommand.BOOT_PXE })).command!;
    const raw = open([hello]);
    const seen: BMCServiceSessionResponse[] = [];
    let delivered: BMCServiceSessionResponse | undefined;
    while (!delivered) {
      const n = await raw.it.next();
      if (n.done) throw new Error("session ended");
      seen.push(n.value);
      if (n.value.kind.case === "commands" && n.value.kind.value.commands.some((c) => c.id === queued.id)) delivered = n.value;
    }
    expect(seen[0]!.kind.case).toBe("heartbeat");
    const c = (delivered.kind.value as { commands: { id: string }[] }).commands.find((x) => x.id === queued.id);
    expect(c).toMatchObject({ machineId: m.uuid, command: "BOOT_FROM_PXE", address: `${m.ip}:623`, user: "ADMIN", password: "bmc-Secret1", interface: "lanplus" });
    raw.abort.abort();
    expect(m.executed).toEqual([]);
    running = startAgent();
  });
});
