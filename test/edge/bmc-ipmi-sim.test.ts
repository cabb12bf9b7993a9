import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import { IpmiAdapter } from "../../edge/bmc/ipmi.js";
import { formatLeases } from "../../edge/bmc/leases.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { eventually } from "../helpers/eventually.js";
import { freeUdpPort, IPMI_SIM_PASSWORD, IPMI_SIM_USER, installed, startIpmiSim } from "../helpers/ipmi-sim.js";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * The IPMI adapter against a real BMC protocol peer: OpenIPMI's ipmi_sim,
 * driven by the real ipmitool. The chassis (power, boot device, identify LED)
 * is a shell script ipmi_sim calls, keeping its state in files.
 */
const available = installed("ipmi_sim", "ipmitool");
if (!available) console.warn("skipping the ipmi_sim tests: ipmi_sim (Debian package openipmi) or ipmitool is not installed");

let dir: string;
let port: number;
let sim: ChildProcess | undefined;
const uuid = randomUUID();
const target = () => ({ host: "127.0.0.1", port, user: IPMI_SIM_USER, password: IPMI_SIM_PASSWORD, interface: "lanplus" });
// ipmi_sim cannot tell its cipher suites; naming one saves ten seconds per call.
const ipmiAdapter = () => new IpmiAdapter(undefined, "ipmitool", { cipherSuite: 3 });
const state = async (name: string) => (await readFile(join(dir, name), "utf8").catch(() => "")).trim();

beforeAll(async () => {
  if (!available) return;
  dir = await mkdtemp(join(tmpdir(), "ipmi-sim-"));
  port = await freeUdpPort();
  await mkdir(join(dir, "state"));
  const chassis = join(dir, "chassis.sh");
  await writeFile(
    chassis,
    `#!/bin/sh
# ipmi_sim calls: set power 1 | get power | set reset 1 | set boot pxe | get boot | set identify "<interval> <force>"
d='${dir}'
for a in "$@"; do printf "[%s]" "$a" >> "$d/calls"; done; echo >> "$d/calls"
case "$1" in
  get) shift; for p in "$@"; do
         case "$p" in
           power) echo "power:$(cat "$d/power" 2>/dev/null || echo 0)";;
           boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo default)";;
         esac
       done;;
  set) case "$2" in
         power) echo "$3" > "$d/power";;
         reset) echo 1 > "$d/power"; echo x >> "$d/resets";;
         boot) echo "$3" > "$d/boot";;
         identify) echo "$3" | cut -d' ' -f2 > "$d/identify";;
       esac;;
esac
`,
  );
  await chmod(chassis, 0o755);
  sim = await startIpmiSim({ dir, port, uuid, name: "metal-test", extra: [`chassis_control "${chassis}"`] });
  const ipmi = ipmiAdapter();
  await eventually("ipmi_sim to answer a query", () => ipmi.query(target()).then(() => true));
});

afterAll(async () => {
  sim?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)("IPMI adapter against ipmi_sim", () => {
  it("reads the system GUID, firmware and power state, and carries out power, boot and identify commands", async () => {
    const ipmi = ipmiAdapter();
    expect(await ipmi.query(target())).toEqual({ uuid, firmware: "9.08", powerState: "OFF", fru: {} });
    expect(await ipmi.execute(target(), "POWER_ON")).toBe("Chassis Power Control: Up/On");
    expect((await ipmi.query(target())).powerState).toBe("ON");
    expect(await ipmi.execute(target(), "BOOT_FROM_PXE")).toBe("Set Boot Device to pxe");
    expect(await state("boot")).toBe("pxe");
    await ipmi.execute(target(), "LED_ON");
    expect(await state("identify")).toBe("1");
    await ipmi.execute(target(), "LED_OFF");
    expect(await state("identify")).toBe("0");
    expect(await ipmi.execute(target(), "RESET")).toBe("Chassis Power Control: Reset");
    expect(await state("resets")).toBe("x");
    expect(await ipmi.execute(target(), "POWER_OFF")).toBe("Chassis Power Control: Down/Off");
    expect((await ipmi.query(target())).powerState).toBe("OFF");
  });

  it("fails with the BMC's error on a wrong password", async () => {
    await expect(ipmiAdapter().query({ ...target(), password: "wrong-password" })).rejects.toThrow(/ipmitool/);
  });
});

describe.skipIf(!available)("metal-bmc with ipmitool against ipmi_sim", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });

  it("reports the BMC found in the lease file and powers it on when told", async () => {
    const fixture = await setUpPartition(server);
    await ipmiAdapter().execute(target(), "POWER_OFF");
    const leaseFile = join(dir, "dhcpd.leases");
    await writeFile(leaseFile, formatLeases([{ ip: "127.0.0.1", mac: "aa:bb:cc:00:02:01", starts: new Date(Date.now() - 1000), state: "active" }]));
    const token = fixture.infraToken;
    const agent = new BmcAgent({
      transport: createTransport({ baseUrl: server.url, token }),
      partition: "p1",
      agent: "bmc-ipmi",
      leaseFile,
      stateDir: join(dir, "agent"),
      adapter: ipmiAdapter(),
      credentials: { user: "ADMIN", password: "bmc-Secret1", interface: "lanplus", port },
      timing: { pollMs: 300, heartbeatMs: 200, idleMs: 3_000, backoff: { initialMs: 50, maxMs: 500 } },
    });
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    try {
      const admin = server.client(AdminMachineService, server.adminToken);
      await eventually("report", async () => (await admin.get({ id: uuid })).machine?.bmc?.address === `127.0.0.1:${port}`);
      expect((await admin.get({ id: uuid })).machine?.bmc).toMatchObject({ version: "9.08", powerState: "OFF" });
      const on = (await admin.bMCCommand({ id: uuid, command: BmcCommand.POWER_ON })).command!;
      await eventually("power on done", async () => (await admin.commands({ id: uuid })).commands.find((c) => c.id === on.id)?.status === BmcCommandStatus.DONE);
      expect(await state("power")).toBe("1");
      await eventually("power state reported", async () => (await admin.get({ id: uuid })).machine?.bmc?.powerState === "ON");
    } finally {
      stop.abort();
      await running;
    }
  });
});
