import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { BmcAgent } from "../../edge/bmc/agent.js";
import { IpmiAdapter } from "../../edge/bmc/ipmi.js";
import { IpmiSolConsoles } from "../../edge/bmc/ipmi-sol.js";
import { formatLeases } from "../../edge/bmc/leases.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import type { ConsoleSession } from "../../server/sessions/console/relay-broker.js";
import { eventually } from "../helpers/eventually.js";
import { freeUdpPort, installed, startIpmiSim } from "../helpers/ipmi-sim.js";
import { setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

/**
 * The console relay over real IPMI Serial-over-LAN: ipmitool `sol activate`
 * against OpenIPMI's ipmi_sim, whose SOL payload is wired to a TCP socket
 * that plays the machine's serial port.
 */
const available = installed("ipmi_sim", "ipmitool", "script");
if (!available) console.warn("skipping the SOL console tests: ipmi_sim (openipmi), ipmitool or script (util-linux) is not installed");

/** The machine's serial port: what the machine prints, and a line discipline that answers. */
class SerialPort {
  socket: Socket | undefined;
  received = "";
  private line = "";
  print(s: string): void {
    this.socket?.write(s);
  }
  feed(s: string): void {
    this.received += s;
    for (const ch of s) {
      if (ch === "\r" || ch === "\n") {
        if (this.line !== "") this.print(`\r\nmachine heard: ${this.line}\r\nlogin: `);
        this.line = "";
      } else {
        this.line += ch;
        this.print(ch);
      }
    }
  }
}

let dir: string;
let port: number;
let sim: ChildProcess | undefined;
let serialServer: Server;
const serial = new SerialPort();
const uuid = randomUUID();
let server: TestServer;

function watch(c: ConsoleSession) {
  const seen = { text: "", ended: false };
  c.onData((d) => (seen.text += Buffer.from(d).toString("latin1")));
  c.onClose(() => (seen.ended = true));
  return seen;
}

beforeAll(async () => {
  if (!available) return;
  dir = await mkdtemp(join(tmpdir(), "ipmi-sol-"));
  port = await freeUdpPort();
  serialServer = createServer((s) => {
    serial.socket = s;
    s.setEncoding("latin1");
    s.on("data", (d: string) => serial.feed(d));
  });
  await new Promise<void>((r) => serialServer.listen(0, "127.0.0.1", r));
  const serialPort = (serialServer.address() as { port: number }).port;
  await mkdir(join(dir, "state"));
  sim = await startIpmiSim({ dir, port, uuid, name: "metal-sol-test", extra: [`sol "tcp:127.0.0.1:${serialPort}" 115200`] });
  await eventually("ipmi_sim to connect its SOL port", () => serial.socket !== undefined);
  server = await startTestServer();
});

afterAll(async () => {
  sim?.kill();
  serial.socket?.destroy();
  await new Promise<void>((r) => (serialServer ? serialServer.close(() => r()) : r()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)("console relay over IPMI SOL (ipmitool against ipmi_sim)", () => {
  it("carries the machine's output and typed input through metal-bmc, and frees the SOL payload on close", async () => {
    const fixture = await setUpPartition(server);
    const leaseFile = join(dir, "dhcpd.leases");
    await writeFile(leaseFile, formatLeases([{ ip: "127.0.0.1", mac: "aa:bb:cc:00:03:01", starts: new Date(Date.now() - 1000), state: "active" }]));
    const token = fixture.infraToken;
    const agent = new BmcAgent({
      transport: createTransport({ baseUrl: server.url, token }),
      partition: "p1",
      agent: "bmc-sol",
      leaseFile,
      stateDir: join(dir, "agent"),
      adapter: new IpmiAdapter(undefined, "ipmitool", { cipherSuite: 3 }),
      console: new IpmiSolConsoles({ cipherSuite: 3 }),
      credentials: { user: "ADMIN", password: "bmc-Secret1", interface: "lanplus", port },
      timing: { pollMs: 5_000, heartbeatMs: 200, idleMs: 3_000, backoff: { initialMs: 50, maxMs: 500 } },
    });
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    try {
      const admin = server.client(AdminMachineService, server.adminToken);
      await eventually("report", async () => (await admin.get({ id: uuid }).catch(() => undefined))?.machine?.bmc?.address === `127.0.0.1:${port}`);
      const broker = server.app.relayBroker;

      const c = await broker.openConsole("p1", uuid, { timeoutMs: 20_000 });
      const seen = watch(c);
      serial.print("[    0.000000] Linux version 6.1.0-sol\r\nlogin: ");
      await eventually("the machine's output", () => seen.text.includes("Linux version 6.1.0-sol\r\nlogin: "));
      c.write("hello over sol\r");
      await eventually("the machine's answer", () => seen.text.includes("machine heard: hello over sol"));
      expect(serial.received).toContain("hello over sol\r");
      c.close();
      await eventually("metal-bmc's relay ends", () => agent.consoleRelays === 0);

      // The payload was deactivated: a second console gets a session (a left-over one would be refused as already active).
      // It is opened as for a machine allocated just now: SOL replays nothing, so everything it carries is live,
      // marked with the time it arrived, and passes the cut at the allocation's start.
      const again = await broker.openConsole("p1", uuid, { timeoutMs: 20_000, outputSince: new Date() });
      const seen2 = watch(again);
      again.write("second\r");
      await eventually("the answer on the second console", () => seen2.text.includes("machine heard: second"));
      expect(again.withheldBytes).toBe(0);
      again.close();
      await eventually("metal-bmc's relay ends", () => agent.consoleRelays === 0);
    } finally {
      stop.abort();
      await running;
    }
  });
});
