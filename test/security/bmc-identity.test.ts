import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import { IpmiAdapter } from "../../edge/bmc/ipmi.js";
import { SimBmcs } from "../../edge/sim/bmc.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { BMCService } from "../../gen/metal/infra/v1/bmc_pb.js";
import { eventually } from "../e2e/lab-harness.js";
import { runBmcAgent } from "../helpers/bmc-agent.js";
import { expectCode } from "../helpers/expect.js";
import { freeUdpPort, IPMI_SIM_PASSWORD, IPMI_SIM_USER, installed, startIpmiSim } from "../helpers/ipmi-sim.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * Issue 12 item 2: a BMC command reaches only its own machine. metal-bmc asks
 * the BMC at the stored address which machine it belongs to before acting
 * (simulated BMCs and a real IPMI peer, ipmi_sim through ipmitool), and the
 * control plane sends nothing for a machine whose BMC address another record
 * of its partition claims (a stale record after a hardware swap, a DHCP
 * re-lease, a lab's leftovers).
 */
let server: TestServer;
let fixture: PartitionFixture;
let dir: string;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  dir = await mkdtemp(join(tmpdir(), "bmc-identity-"));
});

afterAll(async () => {
  await fixture?.stopAll();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const admin = () => server.client(AdminMachineService, server.adminToken);

/** A machine record whose BMC metal-bmc reported at `address` (as a stale or re-leased record would have it). */
async function recordAt(machineId: string, address: string, login = { user: "ADMIN", password: "ADMIN" }): Promise<void> {
  await server.client(BMCService, fixture.infraToken).report({
    partition: "p1",
    reports: [{ machineId, address, mac: "", ...login, interface: "lanplus", version: "", powerState: "ON", fru: {} }],
  });
}

/** Waits for the command to be settled (done, failed or timed out) and returns it. */
async function settled(machineId: string, commandId: string) {
  return eventually(`command ${commandId} settled`, async () => {
    const c = (await admin().commands({ id: machineId })).commands.find((x) => x.id === commandId);
    return c && c.status !== BmcCommandStatus.PENDING ? c : undefined;
  });
}

describe("metal-bmc on simulated BMCs", () => {
  it("refuses a command when the BMC at the stored address reports another machine, and runs it when it reports the right one", async () => {
    const sims = new SimBmcs();
    const stranger = sims.add({ uuid: randomUUID(), ip: "10.31.0.5", mac: "aa:bb:cc:31:00:05" });
    const own = sims.add({ uuid: randomUUID(), ip: "10.31.0.6", mac: "aa:bb:cc:31:00:06" });
    // metal-bmc finds no BMC by itself (empty leases): the records below are all the control plane knows.
    const leaseFile = join(dir, "sim-leases");
    await writeFile(leaseFile, "");
    const stale = randomUUID();
    await recordAt(stale, "10.31.0.5:623");
    await recordAt(own.uuid, "10.31.0.6:623");
    const agent = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-identity-sim", dir: join(dir, "sim"), leaseFile, sims });
    try {
      const off = (await admin().bMCCommand({ id: stale, command: BmcCommand.POWER_OFF })).command!;
      const refused = await settled(stale, off.id);
      expect(refused.status).toBe(BmcCommandStatus.FAILED);
      expect(refused.result).toContain(stale);
      expect(refused.result).toContain(stranger.uuid);
      expect(refused.result).toContain("10.31.0.5:623");
      // The BMC was asked who it is, never told to act.
      expect(stranger.received).toBe(0);
      expect(stranger.power).toBe("ON");

      // Nor does its serial console open for the stale record.
      await eventually("metal-bmc offers relays", async () => server.app.relayBroker.agentsOf("p1").includes("bmc-identity-sim"));
      await expectCode(server.app.relayBroker.openConsole("p1", stale), Code.FailedPrecondition, `console not opened: the BMC at 10.31.0.5:623 reports machine ${stranger.uuid}, expected machine ${stale}`);
      expect(stranger.serial.opened).toBe(0);

      const led = (await admin().bMCCommand({ id: own.uuid, command: BmcCommand.LED_ON })).command!;
      expect((await settled(own.uuid, led.id)).status).toBe(BmcCommandStatus.DONE);
      expect(own.executed).toEqual(["LED_ON"]);
      expect(stranger.executed).toEqual([]);
    } finally {
      await agent.stop();
    }
  });
});

describe("the control plane with a BMC address two machine records claim", () => {
  it("refuses BMCCommand naming the other machine, and fails commands queued before, with the reason, without sending them", async () => {
    const sims = new SimBmcs();
    const live = sims.add({ uuid: randomUUID(), ip: "10.32.0.7", mac: "aa:bb:cc:32:00:07" });
    await recordAt(live.uuid, "10.32.0.7:623");
    // Queued while the address was the machine's own (metal-bmc is not connected yet).
    const reset = (await admin().bMCCommand({ id: live.uuid, command: BmcCommand.RESET })).command!;
    const leftover = randomUUID();
    await recordAt(leftover, "10.32.0.7:623");

    await expectCode(admin().bMCCommand({ id: live.uuid, command: BmcCommand.LED_ON }), Code.FailedPrecondition, leftover);
    await expectCode(admin().bMCCommand({ id: leftover, command: BmcCommand.POWER_OFF }), Code.FailedPrecondition, live.uuid);
    // Refused before anything was queued or recorded.
    expect((await admin().commands({ id: leftover })).commands).toEqual([]);
    expect((await admin().get({ id: live.uuid })).machine?.led?.state).not.toBe("on");

    const leaseFile = join(dir, "shared-leases");
    await writeFile(leaseFile, "");
    const agent = runBmcAgent({ url: server.url, token: fixture.infraToken, agent: "bmc-identity-shared", dir: join(dir, "shared"), leaseFile, sims });
    try {
      const failed = await settled(live.uuid, reset.id);
      expect(failed.status).toBe(BmcCommandStatus.FAILED);
      expect(failed.result).toMatch(/^not dispatched: /);
      expect(failed.result).toContain("10.32.0.7:623");
      expect(failed.result).toContain(leftover);
      expect(live.received).toBe(0);
      expect(agent.agent.duplicates).toBe(0);
    } finally {
      await agent.stop();
    }
    expect(live.resets).toBe(0);
  });

  it("scopes the check to the partition: the same address in another partition's BMC network is not shared", async () => {
    const sims = new SimBmcs();
    const m = sims.add({ uuid: randomUUID(), ip: "10.33.0.8", mac: "aa:bb:cc:33:00:08" });
    await recordAt(m.uuid, "10.33.0.8:623");
    // A record of another partition with the same address does not block this one: BMC networks are per partition.
    await server.client(AdminPartitions, server.adminToken).create({ id: "p9" });
    const p9 = (await server.client(AdminTokens, server.adminToken).create({ subject: "p9-agents", roles: { infraPartition: "p9" } })).secret;
    await server.client(BMCService, p9).report({
      partition: "p9",
      reports: [{ machineId: randomUUID(), address: "10.33.0.8:623", mac: "", user: "ADMIN", password: "ADMIN", interface: "lanplus", version: "", powerState: "ON", fru: {} }],
    });
    const cmd = await admin().bMCCommand({ id: m.uuid, command: BmcCommand.LED_ON });
    expect(cmd.command?.status).toBe(BmcCommandStatus.PENDING);
  });
});

const ipmiAvailable = installed("ipmi_sim", "ipmitool");
if (!ipmiAvailable) console.warn("skipping the ipmi_sim identity test: ipmi_sim (Debian package openipmi) or ipmitool is not installed");

describe.skipIf(!ipmiAvailable)("metal-bmc with ipmitool against ipmi_sim", () => {
  let sim: ChildProcess | undefined;
  let simDir: string;
  let port: number;
  const bmcUuid = randomUUID();
  // ipmi_sim cannot tell its cipher suites; naming one saves ten seconds per call.
  const ipmi = () => new IpmiAdapter(undefined, "ipmitool", { cipherSuite: 3 });
  const target = () => ({ host: "127.0.0.1", port, user: IPMI_SIM_USER, password: IPMI_SIM_PASSWORD, interface: "lanplus" });
  const calls = async () => (await readFile(join(simDir, "calls"), "utf8").catch(() => "")).trim();

  beforeAll(async () => {
    simDir = join(dir, "ipmi");
    await mkdir(join(simDir, "state"), { recursive: true });
    port = await freeUdpPort();
    const chassis = join(simDir, "chassis.sh");
    // ipmi_sim calls: get power | set power 1 | set reset 1 | ...; every call is logged, power kept in a file.
    await writeFile(
      chassis,
      `#!/bin/sh
d='${simDir}'
for a in "$@"; do printf "[%s]" "$a" >> "$d/calls"; done; echo >> "$d/calls"
case "$1" in
  get) shift; for p in "$@"; do [ "$p" = power ] && echo "power:$(cat "$d/power" 2>/dev/null || echo 0)"; done;;
  set) [ "$2" = power ] && echo "$3" > "$d/power";;
esac
`,
    );
    await chmod(chassis, 0o755);
    sim = await startIpmiSim({ dir: simDir, port, uuid: bmcUuid, name: "metal-identity", extra: [`chassis_control "${chassis}"`] });
    await eventually("ipmi_sim to answer", async () => (await ipmi().identify(target())) === bmcUuid, 15_000);
  });

  afterAll(() => {
    sim?.kill();
  });

  it("reads the machine UUID the BMC reports (its system GUID)", async () => {
    expect(await ipmi().identify(target())).toBe(bmcUuid);
  });

  it("refuses a command for another machine whose record points at this BMC, and runs one for its own machine", async () => {
    const leaseFile = join(simDir, "leases");
    await writeFile(leaseFile, "");
    const stale = randomUUID();
    const login = { user: IPMI_SIM_USER, password: IPMI_SIM_PASSWORD };
    await recordAt(stale, `127.0.0.1:${port}`, login);
    const agent = new BmcAgent({
      transport: createTransport({ baseUrl: server.url, protocol: "grpc", token: fixture.infraToken }),
      partition: "p1",
      agent: "bmc-identity-ipmi",
      leaseFile,
      stateDir: join(simDir, "agent"),
      adapter: ipmi(),
      credentials: { ...login, interface: "lanplus", port },
      timing: { pollMs: 300, heartbeatMs: 200, idleMs: 5_000, backoff: { initialMs: 50, maxMs: 500 } },
    });
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    try {
      const on = (await admin().bMCCommand({ id: stale, command: BmcCommand.POWER_ON })).command!;
      const refused = await settled(stale, on.id);
      expect(refused.status).toBe(BmcCommandStatus.FAILED);
      expect(refused.result).toContain(stale);
      expect(refused.result).toContain(bmcUuid);
      // ipmi_sim was never told to change the power (a power command makes it call the chassis script with "set power").
      expect(await calls()).not.toContain("[set]");

      // The stale record goes (a bare record without events may be deleted); the BMC's own machine takes the address.
      await admin().delete({ id: stale });
      await recordAt(bmcUuid, `127.0.0.1:${port}`, login);
      const own = (await admin().bMCCommand({ id: bmcUuid, command: BmcCommand.POWER_ON })).command!;
      expect((await settled(bmcUuid, own.id)).status).toBe(BmcCommandStatus.DONE);
      expect(await calls()).toContain("[set][power][1]");
    } finally {
      stop.abort();
      await running;
    }
  });
});
