/**
 * MachineService.Watch with batch_snapshot (the web console's request): the
 * same snapshot as without it, in snapshot_batch messages of at most 250
 * machines, then the same changes; the tenant's batches hold only its project's machines.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineWatchChangeKind as Kind, type Machine, MachineService, MachineState } from "../../gen/metal/api/v1/machine_pb.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import { seedMachines } from "../web/console-load.js";

let server: TestServer;
let fixture: PartitionFixture;
let viewer: string;
const SEEDED = 600;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  // Every other one allocated to project console-load.
  await seedMachines(server, SEEDED);
  viewer = (await server.client(AdminTokens, server.adminToken).create({ subject: "vera", roles: { projectRoles: { "console-load": ProjectRole.VIEWER } } })).secret;
}, scaled(60_000));
afterAll(() => fixture?.stopAll());

type Message = { case: string | undefined; value?: unknown };

/**
 * The messages of a watch up to and including snapshot_done (then `afterSnapshot` runs), then `more` further
 * ones, or with `until`, further ones up to the first it accepts; the stream is then closed.
 */
async function read(stream: (signal: AbortSignal) => AsyncIterable<{ message: Message }>, more = 0, afterSnapshot?: (sofar: Message[]) => Promise<unknown>, until?: (m: Message) => boolean): Promise<Message[]> {
  const abort = new AbortController();
  const out: Message[] = [];
  let left = -1;
  try {
    for await (const { message } of stream(abort.signal)) {
      out.push(message);
      if (message.case === "snapshotDone") {
        left = more;
        await afterSnapshot?.(out);
      } else if (until && left >= 0) {
        if (until(message)) break;
      } else if (left > 0) left--;
      if (left === 0 && !until) break;
    }
  } finally {
    abort.abort();
  }
  return out;
}

const ids = (ms: Machine[]) => ms.map((m) => m.id);
/** The UPDATED change of one machine (not a change of it sent again from around the snapshot's position). */
const isUpdateOf = (m: Message, id: string) => m.case === "change" && (m.value as { id: string; kind: Kind }).id === id && (m.value as { kind: Kind }).kind === Kind.UPDATED;
const batches = (messages: Message[]) => messages.filter((m) => m.case === "snapshotBatch").map((m) => (m.value as { machines: Machine[] }).machines);

describe("MachineService.Watch with batch_snapshot", () => {
  it("sends the operators' snapshot in batches of at most 250, the same machines in the same order as one by one", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    const single = await read((signal) => admin.watch({}, { signal }));
    const batched = await read((signal) => admin.watch({ batchSnapshot: true }, { signal }));
    const one = single.filter((m) => m.case === "snapshot").map((m) => m.value as Machine);
    expect(one.length).toBeGreaterThanOrEqual(SEEDED);
    expect(batched.some((m) => m.case === "snapshot")).toBe(false);
    const got = batches(batched);
    expect(got.every((b) => b.length > 0 && b.length <= 250)).toBe(true);
    expect(got.length).toBe(Math.ceil(one.length / 250));
    expect(ids(got.flat())).toEqual(ids(one));
    // Whole machines, as one by one (hardware, events, allocation).
    expect(got.flat()[1]).toEqual(one[1]);
    expect(batched.at(-1)?.case).toBe("snapshotDone");
  });

  it("gives a tenant batches of its project's machines only, then its changes as usual", async () => {
    const tenant = server.client(MachineService, viewer);
    const admin = server.client(AdminMachineService, server.adminToken);
    let locked = "";
    const messages = await read(
      (signal) => tenant.watch({ project: "console-load", batchSnapshot: true }, { signal }),
      1,
      async (sofar) => {
        locked = ids(batches(sofar).flat())[0]!;
        await admin.setState({ id: locked, state: MachineState.LOCKED, reason: "batch test" });
      },
      // A change committed around the snapshot's position may come again first (the Watch contract allows it):
      // the seed's own CREATED or ALLOCATED rows when a transaction still ran as the snapshot took its position.
      (m) => isUpdateOf(m, locked),
    );
    const got = batches(messages).flat();
    expect(got.length).toBe(SEEDED / 2);
    expect(got.every((m) => m.allocation?.project === "console-load")).toBe(true);
    const change = messages.at(-1);
    expect(change?.case).toBe("change");
    // Every change the tenant got is of its project's machines.
    const changed = messages.filter((m) => m.case === "change").map((m) => (m.value as { machine?: Machine }).machine);
    expect(changed.every((m) => m === undefined || m.allocation?.project === "console-load")).toBe(true);
    expect(change?.value).toMatchObject({ kind: Kind.UPDATED, id: locked, machine: { state: MachineState.LOCKED } });
  });

  it("sends one machine's snapshot as a batch of one, and an empty snapshot as snapshot_done alone", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    const all = batches(await read((signal) => admin.watch({ batchSnapshot: true }, { signal }))).flat();
    const one = await read((signal) => admin.watch({ id: all[7]!.id, batchSnapshot: true }, { signal }));
    expect(one.map((m) => m.case)).toEqual(["snapshotBatch", "snapshotDone"]);
    expect(ids(batches(one).flat())).toEqual([all[7]!.id]);
    const none = await read((signal) => admin.watch({ partition: "elsewhere", batchSnapshot: true }, { signal }));
    expect(none.map((m) => m.case)).toEqual(["snapshotDone"]);
  });
});

describe("MachineService.Watch with summary", () => {
  /** What a list shows of a machine: toMachineSummary's promise, checked field by field against the whole machine. */
  const listed = (m: Machine) => ({
    id: m.id,
    partition: m.partition,
    size: m.size,
    rack: m.rack,
    state: m.state,
    waiting: m.waiting,
    allocation: m.allocation && { project: m.allocation.project, hostname: m.allocation.hostname, image: m.allocation.image, createdAt: m.allocation.createdAt },
    events: m.events && { liveliness: m.events.liveliness, newest: m.events.log[0], crashLoop: m.events.crashLoop, failedReclaim: m.events.failedMachineReclaim, lastError: m.events.lastErrorEvent },
  });

  it("keeps what a list shows and leaves out hardware, BMC, networks, keys, user data and older events, in the snapshot and in changes", async () => {
    const admin = server.client(AdminMachineService, server.adminToken);
    const whole = batches(await read((signal) => admin.watch({ batchSnapshot: true }, { signal }))).flat();
    let changedId = "";
    const messages = await read(
      (signal) => admin.watch({ batchSnapshot: true, summary: true }, { signal }),
      1,
      async (sofar) => {
        changedId = batches(sofar)
          .flat()
          .find((m) => m.allocation)!.id;
        await admin.setState({ id: changedId, state: MachineState.TAINTED, reason: "summary test" });
      },
      (m) => isUpdateOf(m, changedId),
    );
    const brief = batches(messages).flat();
    expect(ids(brief)).toEqual(ids(whole));
    expect(brief.map(listed)).toEqual(whole.map(listed));
    const allocated = whole.find((m) => m.id === changedId)!;
    // The seed gives allocated machines networks, hardware and seven events: without summary they are there.
    expect(allocated.hardware).toBeDefined();
    expect(allocated.allocation!.networks.length).toBeGreaterThan(0);
    expect(allocated.events!.log.length).toBeGreaterThan(1);
    for (const m of brief) {
      expect(m.hardware).toBeUndefined();
      expect(m.bmc).toBeUndefined();
      expect(m.events!.log.length).toBeLessThanOrEqual(1);
      if (m.allocation) expect([m.allocation.networks, m.allocation.sshKeys, m.allocation.userData, m.allocation.dnsServers]).toEqual([[], [], "", []]);
    }
    const change = messages.at(-1)!.value as { machine?: Machine };
    expect(change.machine).toMatchObject({ id: changedId, state: MachineState.TAINTED });
    expect(change.machine!.hardware).toBeUndefined();
    expect(change.machine!.events!.log.length).toBe(1);
    expect(change.machine!.allocation!.networks).toEqual([]);
  });

  it("gives a tenant summaries of its project's machines, and whole machines without summary", async () => {
    const tenant = server.client(MachineService, viewer);
    const brief = batches(await read((signal) => tenant.watch({ project: "console-load", batchSnapshot: true, summary: true }, { signal }))).flat();
    const whole = batches(await read((signal) => tenant.watch({ project: "console-load", batchSnapshot: true }, { signal }))).flat();
    expect(brief.map(listed)).toEqual(whole.map(listed));
    expect(brief.every((m) => m.hardware === undefined && m.allocation!.networks.length === 0)).toBe(true);
    expect(whole.every((m) => m.hardware !== undefined && m.allocation!.networks.length > 0)).toBe(true);
  });
});
