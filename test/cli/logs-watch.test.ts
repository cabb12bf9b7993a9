import { connect, createServer, type Server, type Socket } from "node:net";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alreadyHappened, parseUntilEvent } from "../../cli/commands/machine.js";
import { ProvisioningEventSchema, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import { cli } from "./run-cli.js";

let server: TestServer;
let fixture: PartitionFixture;
const m = cli();
const env = () => ({ METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken });

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
});
afterAll(() => fixture?.stopAll());

/** A port nothing listens on: a request there is refused, so a flag checked only after a request would show as exit 7. */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

const sendEvent = (machineId: string, type: T, message: string) => server.client(EventService, fixture.infraToken).send({ partition: "p1", events: [{ machineId, type, message }] });

describe("metalctl machine logs --until", () => {
  it("ends at once when the awaited event is already in the log", async () => {
    const w = await fixture.bootMachine("r1");
    // Before: the log printed by the first poll was history, and this waited for the next Waiting forever.
    const r = await m.run(["machine", "logs", w.id, "--watch", "--until", "waiting"], env());
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^TIME\s+EVENT\s+MESSAGE\n/);
    expect(r.stdout).toMatch(/Registering[\s\S]*Waiting/);
  });

  it("--until without --watch waits for the event (it implies --watch)", async () => {
    const w = await fixture.bootMachine("r2");
    const running = m.start(["machine", "logs", w.id, "--until", "crashed"], env());
    // The snapshot has been printed: the crash below is new to it.
    await eventually("the snapshot to print the log", () => running.output().stdout.includes("Waiting"));
    await sendEvent(w.id, T.CRASHED, "disk on fire");
    const r = await running.done;
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split("\n").pop()).toMatch(/Crashed\s+disk on fire$/);
  });

  it("prints rows of later events in the columns of the first table", async () => {
    const w = await fixture.bootMachine("r1");
    const running = m.start(["machine", "logs", w.id, "--watch", "--until", "crashed"], env());
    await eventually("the snapshot to print the log", () => running.output().stdout.includes("Waiting"));
    await sendEvent(w.id, T.CRASHED, "late one");
    const r = await running.done;
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    const eventAt = lines[0]!.indexOf("EVENT");
    const messageAt = lines[0]!.indexOf("MESSAGE");
    expect(lines.at(-1)).toContain("late one");
    // Every row, the first table's and the late one, starts its event and message where the headers do.
    for (const line of lines.slice(1)) {
      expect(line.slice(eventAt - 2, eventAt), line).toBe("  ");
      expect(line[eventAt], line).not.toBe(" ");
      // An event without a message ends after its name.
      if (line.length <= messageAt) continue;
      expect(line.slice(messageAt - 2, messageAt), line).toBe("  ");
      expect(line[messageAt], line).not.toBe(" ");
    }
  });

  it("refuses an unknown event before any request; --expires takes durations", async () => {
    const offline = { METALCTL_API_URL: await deadUrl(), METALCTL_API_TOKEN: "x" };
    const id = "00000000-0000-0000-0000-000000000001";
    const bogus = await m.run(["machine", "logs", id, "--watch", "--until", "bogus-event"], offline);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toBe(
      '--until: "bogus-event" is not a provisioning event; use one of pxe-booting, preparing, registering, waiting, installing, booting-new-kernel, phoned-home, planned-reboot, machine-reclaim, crashed\n',
    );
    const expires = await m.run(["token", "create", "--expires", "2"], offline);
    expect(expires).toMatchObject({ code: 2, stderr: '--expires: "2" is not a duration like 500ms, 2s, 1m30s, 24h or 30d (a unit is required: 2s, 2ms, 2m)\n' });
    const token = await m.run(["token", "create", "--expires", "1m30s", "-o", "json"], env());
    expect(token.stderr).toBe("");
    const t = JSON.parse(token.stdout) as { token: { expiresAt: string; createdAt: string } };
    expect(Math.round((Date.parse(t.token.expiresAt) - Date.parse(t.token.createdAt)) / 1000)).toBe(90);
  });

  it("streams through one Watch call instead of polling", async () => {
    const w = await fixture.bootMachine("r2");
    const before = server.app.streamLimits.open("watch");
    const running = m.start(["machine", "logs", w.id, "--watch", "--until", "crashed"], env());
    await eventually("the snapshot to print the log", () => running.output().stdout.includes("Waiting"));
    // The log came from an open stream (a poll would be unary calls, no stream).
    expect(server.app.streamLimits.open("watch")).toBe(before + 1);
    await sendEvent(w.id, T.CRASHED, "streamed");
    const r = await running.done;
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout.trimEnd().split("\n").pop()).toMatch(/Crashed\s+streamed$/);
    await eventually("the stream to close", () => server.app.streamLimits.open("watch") === before);
  });

  it("reconnects a dropped stream and resumes from its revision: nothing missed, nothing twice", async () => {
    const w = await fixture.bootMachine("r1");
    const proxy = await tcpProxy(new URL(server.url).port);
    try {
      const running = m.start(["machine", "logs", w.id, "--watch", "--until", "crashed"], { METALCTL_API_URL: proxy.url, METALCTL_API_TOKEN: server.adminToken });
      await eventually("the snapshot to print the log", () => running.output().stdout.includes("Waiting"));
      await sendEvent(w.id, T.PXE_BOOTING, "before the drop");
      await eventually("the event before the drop", () => running.output().stdout.includes("before the drop"));
      const before = proxy.connections();
      proxy.cut();
      // Sent while the stream is down: the resumed stream delivers it from the change log.
      await sendEvent(w.id, T.PREPARING, "while down");
      await eventually("the reconnect", () => proxy.connections() > before, scaled(30_000));
      await sendEvent(w.id, T.CRASHED, "after the drop");
      const r = await running.done;
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/^watch: .*reconnecting in/m);
      const lines = r.stdout.split("\n");
      for (const text of ["before the drop", "while down", "after the drop"])
        expect(
          lines.filter((l) => l.includes(text)),
          text,
        ).toHaveLength(1);
      expect(lines.findIndex((l) => l.includes("while down"))).toBeLessThan(lines.findIndex((l) => l.includes("after the drop")));
    } finally {
      await proxy.close();
    }
  });
});

/** A TCP proxy to the server whose connections the test can cut, as a load balancer restarting would. */
async function tcpProxy(port: string): Promise<{ url: string; cut(): void; connections(): number; close(): Promise<void> }> {
  const open = new Set<Socket>();
  let count = 0;
  const s: Server = createServer((client) => {
    count++;
    const upstream = connect(Number(port), "127.0.0.1");
    for (const sock of [client, upstream]) {
      open.add(sock);
      sock.on("error", () => {});
      sock.on("close", () => {
        open.delete(sock);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(s.address() as { port: number }).port}`,
    cut: () => {
      for (const sock of open) sock.destroy();
    },
    connections: () => count,
    close: async () => {
      for (const sock of open) sock.destroy();
      await new Promise((r) => s.close(r));
    },
  };
}

describe("which events count for --until", () => {
  const log = (...types: T[]) => types.map((type) => create(ProvisioningEventSchema, { type }));
  it("counts events of the current cycle and the newest event, not those before a reclaim or planned reboot", () => {
    const allocated = log(T.PXE_BOOTING, T.PREPARING, T.REGISTERING, T.WAITING, T.INSTALLING, T.BOOTING_NEW_KERNEL, T.PHONED_HOME);
    expect(alreadyHappened(allocated, T.PHONED_HOME)).toBe(true);
    expect(alreadyHappened(allocated, T.WAITING)).toBe(true);
    const freed = [...allocated, ...log(T.MACHINE_RECLAIM)];
    expect(alreadyHappened(freed, T.WAITING)).toBe(false);
    expect(alreadyHappened(freed, T.PHONED_HOME)).toBe(false);
    expect(alreadyHappened(freed, T.MACHINE_RECLAIM)).toBe(true);
    expect(alreadyHappened([...freed, ...log(T.PXE_BOOTING)], T.PXE_BOOTING)).toBe(true);
    expect(alreadyHappened([...allocated, ...log(T.PLANNED_REBOOT)], T.PHONED_HOME)).toBe(false);
    expect(alreadyHappened([], T.WAITING)).toBe(false);
  });

  it("reads an event as the README and the table write it", () => {
    for (const word of ["phoned home", "Phoned Home", "phoned-home", "PHONED_HOME", "PROVISIONING_EVENT_TYPE_PHONED_HOME"]) expect(parseUntilEvent(word), word).toBe(T.PHONED_HOME);
    expect(() => parseUntilEvent("alive")).toThrow(/not a provisioning event/);
  });
});
