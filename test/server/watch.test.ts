import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineWatchChangeKind as Kind, MachineService, MachineState, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { createInProcessBus } from "../../server/bus/fanout.js";
import { runChangeLogPruneJob } from "../../server/jobs/change-log-prune.js";
import { WatchHub } from "../../server/sessions/watch/hub.js";
import { eventually } from "../helpers/eventually.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition, type WaitingMachine } from "../helpers/partition-fixture.js";
import type { TestServer } from "../helpers/server-launch.js";
import { startSharedDbReplicas } from "../helpers/shared-db-replicas.js";

let a: TestServer;
let b: TestServer;
let databaseUrl: string;
let fixture: PartitionFixture;
let paViewer: string;
let pbViewer: string;

beforeAll(async () => {
  // Two replicas on one database, each on its own in-process bus: a change made on A reaches B's
  // watchers only through the change log (B's hub reads it on its safety-net interval).
  const set = await startSharedDbReplicas(["watch-a", "watch-b"]);
  [a, b] = [set.replicas[0]!, set.replicas[1]!];
  databaseUrl = set.metalDatabaseUrl;
  fixture = await setUpPartition(a);
  const tokens = a.client(AdminTokens, a.adminToken);
  paViewer = (await tokens.create({ subject: "vera", roles: { projectRoles: { pa: ProjectRole.VIEWER } } })).secret;
  pbViewer = (await tokens.create({ subject: "vic", roles: { projectRoles: { pb: ProjectRole.VIEWER } } })).secret;
});
afterAll(() => fixture?.stopAll());

type Message = { case: string | undefined; value?: unknown };
interface Change {
  kind: Kind;
  revision: bigint;
  id: string;
  machine?: { state: MachineState; allocation?: { project: string }; tags: string[] };
  lastInRevision: boolean;
}
interface EventsAdded {
  id: string;
  revision: bigint;
  events: { type: T; message: string }[];
  lastInRevision: boolean;
}

/** A watch running in the background: every message it got, and how it ended. */
class Recorder {
  readonly messages: Message[] = [];
  error: ConnectError | undefined;
  ended = false;
  readonly abort = new AbortController();
  constructor(open: (signal: AbortSignal) => AsyncIterable<{ message: Message }>) {
    void (async () => {
      try {
        for await (const r of open(this.abort.signal)) this.messages.push(r.message);
      } catch (err) {
        if (!this.abort.signal.aborted) this.error = ConnectError.from(err);
      } finally {
        this.ended = true;
      }
    })();
  }
  of<C extends string>(c: C) {
    return this.messages.filter((m) => m.case === c).map((m) => m.value);
  }
  changes(id?: string): Change[] {
    return (this.of("change") as Change[]).filter((c) => id === undefined || c.id === id);
  }
  added(): EventsAdded[] {
    return this.of("eventsAdded") as EventsAdded[];
  }
  snapshotIds(): string[] {
    return (this.of("snapshot") as { id: string }[]).map((m) => m.id);
  }
  async snapshotDone(): Promise<bigint> {
    const done = await eventually("snapshot_done", () => this.of("snapshotDone")[0] as { revision: bigint } | undefined);
    return done.revision;
  }
  /** Changes of the machine until one of `kind` arrived. */
  async until(id: string, kind: Kind): Promise<Change[]> {
    return eventually(`a ${Kind[kind]} change of ${id}`, () => {
      const cs = this.changes(id);
      return cs.some((c) => c.kind === kind) && cs;
    });
  }
}

const adminWatch = (on: TestServer, req: Parameters<ReturnType<typeof on.client<typeof AdminMachineService>>["watch"]>[0] = {}) =>
  new Recorder((signal) => on.client(AdminMachineService, on.adminToken).watch(req, { signal }));
const tenantWatch = (on: TestServer, token: string, req: Parameters<ReturnType<typeof on.client<typeof MachineService>>["watch"]>[0]) =>
  new Recorder((signal) => on.client(MachineService, token).watch(req, { signal }));

const allocate = (project: "pa" | "pb", machineId: string) =>
  a.client(MachineService, a.adminToken).create({ project, partition: "p1", size: "s1", image: "debian-12", name: `w-${machineId.slice(0, 8)}`, networks: [fixture.primary[project]], machineId });
const sendEvents = (machineId: string, ...events: [T, string][]) => a.client(EventService, fixture.infraToken).send({ partition: "p1", events: events.map(([type, message]) => ({ machineId, type, message })) });

/** An event's message without the server's note on events unexpected in the machine's state. */
const text = (e: { message: string }) => e.message.replace(/^\[[^\]]*\]: /, "");

/** Where `kinds` occur in `changes`, in order (each after the previous); fails when one is missing. */
function inOrder(changes: Change[], kinds: Kind[]): number[] {
  const at: number[] = [];
  let from = 0;
  for (const k of kinds) {
    const i = changes.findIndex((c, n) => n >= from && c.kind === k);
    expect(i, `${Kind[k]} after position ${from} in ${changes.map((c) => Kind[c.kind]).join(",")}`).toBeGreaterThanOrEqual(0);
    at.push(i);
    from = i + 1;
  }
  return at;
}

describe("MachineService.Watch", () => {
  let m1: WaitingMachine;
  let m2: WaitingMachine;

  it("starts with a snapshot of what the matching List shows, then snapshot_done", async () => {
    m1 = await fixture.bootMachine("r1");
    m2 = await fixture.bootMachine("r2");
    const ops = adminWatch(a);
    const revision = await ops.snapshotDone();
    expect(revision).toBeGreaterThan(0n);
    expect(ops.snapshotIds().sort()).toEqual([m1.id, m2.id].sort());
    expect(ops.messages.at(-1)?.case).toBe("snapshotDone");
    // Nothing is allocated to pa yet: its snapshot is empty, as its List is.
    const tenant = tenantWatch(a, paViewer, { project: "pa" });
    await tenant.snapshotDone();
    expect(tenant.snapshotIds()).toEqual([]);
    const other = adminWatch(a, { partition: "elsewhere" });
    await other.snapshotDone();
    expect(other.snapshotIds()).toEqual([]);
    for (const r of [ops, tenant, other]) r.abort.abort();
  });

  it("delivers an allocation, an event, a lock and a free in order; the project sees its machine leave as gone", async () => {
    const ops = adminWatch(a, { id: m1.id });
    const tenant = tenantWatch(a, paViewer, { project: "pa" });
    await Promise.all([ops.snapshotDone(), tenant.snapshotDone()]);

    // Each step waits until the operators' watch has its change: a change carries the machine as the
    // hub read it, so on a busy machine a hub reading late would show a later state than the step's.
    const step = async (kind: Kind, count: number, run: () => Promise<unknown>) => {
      await run();
      await eventually(`${Kind[kind]} change number ${count}`, () => ops.changes(m1.id).filter((c) => c.kind === kind).length >= count);
    };
    const admin = a.client(AdminMachineService, a.adminToken);
    await step(Kind.ALLOCATED, 1, () => allocate("pa", m1.id));
    await step(Kind.EVENTS, 1, () => sendEvents(m1.id, [T.INSTALLING, "watch: installing"]));
    const updatesBefore = ops.changes(m1.id).filter((c) => c.kind === Kind.UPDATED).length;
    await step(Kind.UPDATED, updatesBefore + 1, () => admin.setState({ id: m1.id, state: MachineState.LOCKED, reason: "watch test" }));
    // A locked machine cannot be freed: unlocked first.
    await step(Kind.UPDATED, updatesBefore + 2, () => admin.setState({ id: m1.id, state: MachineState.AVAILABLE, reason: "" }));
    await a.client(MachineService, a.adminToken).delete({ id: m1.id, project: "pa" });

    const seen = await ops.until(m1.id, Kind.FREED);
    const [allocated, event, locked, unlocked, freed] = inOrder(seen, [Kind.ALLOCATED, Kind.EVENTS, Kind.UPDATED, Kind.UPDATED, Kind.FREED]).map((i) => seen[i]!);
    expect(allocated.machine?.allocation?.project).toBe("pa");
    expect(event.machine?.allocation?.project).toBe("pa");
    expect(locked.machine?.state).toBe(MachineState.LOCKED);
    expect(unlocked.machine?.state).toBe(MachineState.AVAILABLE);
    expect(locked.revision).toBeLessThan(unlocked.revision);
    expect(freed.machine?.allocation).toBeUndefined();
    // Revisions never go back.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.revision).toBeGreaterThanOrEqual(seen[i - 1]!.revision);

    const theirs = await tenant.until(m1.id, Kind.GONE);
    inOrder(theirs, [Kind.ALLOCATED, Kind.EVENTS, Kind.UPDATED, Kind.UPDATED, Kind.GONE]);
    // After it left, the project learns nothing more of it, and never its state after the free.
    const gone = theirs.findIndex((c) => c.kind === Kind.GONE);
    expect(theirs.slice(gone).every((c) => c.machine === undefined)).toBe(true);
    expect(theirs.every((c) => c.machine === undefined || c.machine.allocation?.project === "pa")).toBe(true);
    for (const r of [ops, tenant]) r.abort.abort();
  });

  it("with events set, sends the events a machine sent as events_added, newest first", async () => {
    const ops = adminWatch(a, { id: m2.id, events: true });
    await ops.snapshotDone();
    await sendEvents(m2.id, [T.PXE_BOOTING, "watch: one"], [T.PREPARING, "watch: two"]);
    const added = await eventually("the events", () => ops.added().find((e) => e.events.some((x) => text(x) === "watch: one")));
    expect(added.id).toBe(m2.id);
    expect(added.events.map((e) => [e.type, text(e)])).toEqual([
      [T.PREPARING, "watch: two"],
      [T.PXE_BOOTING, "watch: one"],
    ]);
    expect(added.lastInRevision).toBe(true);
    ops.abort.abort();
  });

  it("resumes on the other replica from the last revision it saw, without a gap or a duplicate", async () => {
    const first = adminWatch(a, { id: m2.id, events: true });
    await first.snapshotDone();
    await sendEvents(m2.id, [T.REGISTERING, "resume: 0"]);
    const seen = await eventually("resume: 0", () => first.added().find((e) => e.events[0] && text(e.events[0]) === "resume: 0"));
    expect(seen.lastInRevision).toBe(true);
    first.abort.abort();
    await eventually("the first watch to end", () => first.ended);

    // While no one watches: two changes, each its own transaction.
    await sendEvents(m2.id, [T.WAITING, "resume: 1"]);
    await sendEvents(m2.id, [T.PXE_BOOTING, "resume: 2"]);
    // B has its own bus: it learns of changes made on A from the change log alone (its safety net).
    const second = adminWatch(b, { id: m2.id, events: true, sinceRevision: seen.revision });
    await sendEvents(m2.id, [T.PREPARING, "resume: 3"]);
    await eventually("resume: 3 on B", () => second.added().some((e) => e.events[0] && text(e.events[0]) === "resume: 3"));
    const messages = second.added().flatMap((e) => e.events.map(text));
    expect(messages).toEqual(["resume: 1", "resume: 2", "resume: 3"]);
    expect(second.of("snapshot")).toEqual([]);
    expect(second.of("snapshotDone")).toEqual([]);
    second.abort.abort();
  });

  it("shows a tenant only its project's machines; a foreign or unknown project gets the List's answer", async () => {
    const pb = tenantWatch(b, pbViewer, { project: "pb" });
    await pb.snapshotDone();
    const m3 = await fixture.bootMachine("r1");
    await allocate("pa", m2.id);
    await allocate("pb", m3.id);
    const mine = await eventually("pb's allocation", () => pb.changes().find((c) => c.kind === Kind.ALLOCATED));
    expect(mine.id).toBe(m3.id);
    expect(mine.machine?.allocation?.project).toBe("pb");
    // pa's allocation committed before pb's: had pb been told of it, it would have come first.
    expect(pb.changes().filter((c) => c.id === m2.id)).toEqual([]);
    expect(pb.snapshotIds()).toEqual([]);
    pb.abort.abort();

    for (const project of ["pb", "no-such-project"]) {
      const list = await expectCode(a.client(MachineService, paViewer).list({ project }), Code.PermissionDenied);
      const watch = tenantWatch(a, paViewer, { project });
      await eventually("the refusal", () => watch.ended);
      expect(watch.error?.code, project).toBe(list.code);
      expect(watch.error?.rawMessage, project).toBe(list.rawMessage);
      expect(watch.messages).toEqual([]);
    }
    await expectCode(
      (async () => {
        for await (const _ of a.client(MachineService, paViewer).watch({ project: "pa", id: "not-a-uuid" }));
      })(),
      Code.InvalidArgument,
      "id:",
    );
    await a.client(MachineService, a.adminToken).delete({ id: m2.id, project: "pa" });
    await a.client(MachineService, a.adminToken).delete({ id: m3.id, project: "pb" });
  });

  it("delivers a transaction that started before and committed after another one's change", async () => {
    const ops = adminWatch(a);
    await ops.snapshotDone();
    let heldTx = 0n;
    const held = new pg.Client({ connectionString: databaseUrl });
    await held.connect();
    try {
      await held.query("begin");
      await held.query(`update machines set tags = '["held"]'::jsonb where id = $1`, [m1.id]);
      heldTx = BigInt((await held.query<{ x: string }>("select pg_current_xact_id()::text as x")).rows[0]!.x);
      // Commits while the held transaction (the older one) still runs.
      await a.client(AdminMachineService, a.adminToken).setState({ id: m2.id, state: MachineState.TAINTED, reason: "later" });
      await held.query("commit");
    } finally {
      await held.end();
    }
    // The held transaction's own change (its revision is its transaction id) is delivered, not skipped...
    const tagged = await eventually("the held transaction's change", () => ops.changes(m1.id).find((c) => c.revision === heldTx));
    expect(tagged.machine?.tags).toContain("held");
    // ...and before the change that committed while it still ran (a change carries the machine as the hub read
    // it, so an earlier change of m2 read late may show the taint too: the later one is the one after heldTx).
    const tainted = await eventually("the later change", () => ops.changes(m2.id).find((c) => c.revision > heldTx && c.machine?.state === MachineState.TAINTED));
    expect(ops.messages.indexOf(ops.messages.find((m) => m.value === tagged)!)).toBeLessThan(ops.messages.indexOf(ops.messages.find((m) => m.value === tainted)!));
    ops.abort.abort();
  });

  it("reads again soon when a woken read finds changes held back by an older transaction that ends without a wake-up", async () => {
    // A bus of its own and a safety net far beyond the test's patience: only the hub's own re-read can deliver.
    const bus = createInProcessBus();
    const hub = new WatchHub(a.app.db, bus, { safetyNetMs: 3_600_000 });
    const abort = new AbortController();
    const held = new pg.Client({ connectionString: databaseUrl });
    await held.connect();
    try {
      const stream = hub.watch({ audience: { kind: "operator", secrets: false }, events: false }, abort.signal);
      for (;;) if ((await stream.next()).value?.case === "snapshotDone") break;
      const got: Change[] = [];
      const reading = (async () => {
        for (;;) {
          const r = await stream.next();
          if (r.done) return;
          if (r.value.case === "change") got.push(r.value.value as Change);
        }
      })();
      reading.catch(() => {});
      await eventually("the watcher to attach", () => hub.size === 1);
      await held.query("begin");
      await held.query(`update machines set tags = '["held-2"]'::jsonb where id = $1`, [m1.id]);
      await a.client(AdminMachineService, a.adminToken).setState({ id: m2.id, state: MachineState.TAINTED, reason: "behind" });
      // The writer's wake-up: the read it causes finds nothing settled yet.
      bus.publish("changes");
      await held.query("commit");
      await eventually("both changes", () => got.some((c) => c.id === m1.id && c.machine?.tags.includes("held-2")) && got.some((c) => c.id === m2.id && c.machine?.state === MachineState.TAINTED));
    } finally {
      abort.abort();
      hub.stop();
      await held.end();
    }
  });

  it("ends a watcher that does not read with ResourceExhausted", async () => {
    const hub = new WatchHub(a.app.db, createInProcessBus(), { maxQueued: 3, safetyNetMs: 50 });
    const abort = new AbortController();
    try {
      const stream = hub.watch({ audience: { kind: "operator", secrets: false }, machineId: m1.id, events: false }, abort.signal);
      for (;;) if ((await stream.next()).value?.case === "snapshotDone") break;
      // The stream attaches to the hub when it is asked for its next message; then nobody reads.
      const first = stream.next();
      // It may fail before the test looks at it (the overflow can come with the first batch).
      first.catch(() => {});
      await eventually("the watcher to attach", () => hub.size === 1);
      const admin = a.client(AdminMachineService, a.adminToken);
      for (let i = 0; i < 6; i++) await admin.setState({ id: m1.id, state: i % 2 === 0 ? MachineState.TAINTED : MachineState.AVAILABLE, reason: i % 2 === 0 ? `slow ${i}` : "" });
      // Its queue went over the bound: it is dropped from the hub at once, its messages freed.
      await eventually("the slow watcher to be dropped", () => hub.size === 0);
      // The reader learns it at its next read (or at once, if it was waiting for the first message).
      await expectCode(
        first.then(() => stream.next()),
        Code.ResourceExhausted,
        "reconnect with since_revision",
      );
    } finally {
      abort.abort();
      hub.stop();
    }
  });

  it("refuses a resume point from the future, and the watches of others go on", async () => {
    const other = adminWatch(a, { id: m1.id });
    const now = await other.snapshotDone();
    const future = adminWatch(a, { id: m1.id, sinceRevision: now + 1_000_000n });
    await eventually("the refusal", () => future.ended);
    expect(future.error?.code).toBe(Code.InvalidArgument);
    expect(future.error?.rawMessage).toMatch(/^since_revision: /);
    // The refused watch moved nothing: the open one still hears the next change.
    await a.client(AdminMachineService, a.adminToken).setState({ id: m1.id, state: MachineState.LOCKED, reason: "future" });
    await other.until(m1.id, Kind.UPDATED);
    await a.client(AdminMachineService, a.adminToken).setState({ id: m1.id, state: MachineState.AVAILABLE, reason: "" });
    other.abort.abort();
  });

  it("answers a resume point the log no longer holds with reset and a new snapshot", async () => {
    const before = adminWatch(a, { id: m1.id });
    const old = await before.snapshotDone();
    before.abort.abort();
    await a.client(AdminMachineService, a.adminToken).setState({ id: m1.id, state: MachineState.LOCKED, reason: "prune" });
    // Everything up to now is pruned (a retention of 0).
    expect(await runChangeLogPruneJob(a.app.db, new Date(Date.now() + 60_000), 0)).toBeGreaterThan(0);
    const after = adminWatch(b, { id: m1.id, sinceRevision: old });
    await after.snapshotDone();
    expect(after.messages.map((m) => m.case)).toEqual(["reset", "snapshot", "snapshotDone"]);
    expect((after.messages[1]!.value as { state: MachineState }).state).toBe(MachineState.LOCKED);
    expect((after.messages[0]!.value as { prunedRevision: bigint }).prunedRevision).toBeGreaterThan(old);
    after.abort.abort();
  });
});
