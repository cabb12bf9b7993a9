import { randomUUID } from "node:crypto";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, it } from "vitest";
import { ProjectService as MdProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { SizeReservationService as AdminSizeReservations } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { MachineService, MachineState } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService } from "../../gen/metal/api/v1/network_pb.js";
import { insertWaitingMachines, S1_HARDWARE_JSON, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

/**
 * Random mixes of allocate-by-id, allocate-by-size, free, operator lock /
 * taint / release and size reservations, across projects with and without
 * machine quotas, run in parallel on real connections. After every round the
 * database must agree with what the calls answered, and:
 *  - no machine was handed out twice, nor during its reclaim (a machine freed
 *    in a round is no candidate before its hammer waits again, which the test
 *    plays at the end of the round);
 *  - quotas hold, and reservations hold (free machines always cover what
 *    reserving projects have not used yet, once that held);
 *  - no refusal is spurious: "no machine"/"reserved" refusals only when the
 *    candidates at the start of the round could all have been taken or
 *    withdrawn by the round's other calls; quota refusals only when the
 *    project's successes could have reached its quota.
 * Seeded: METAL_ALLOC_SEED=<n> repeats a run; the seed is in every failure.
 */

const MACHINES = 24;
const ROUNDS = 16;
const QUOTAS: Record<string, number | undefined> = { pa: 2, pb: undefined, pc: 4, pr: undefined };
const PROJECTS = Object.keys(QUOTAS);
const RESERVED_FOR = "pr";
const RESERVED = 3;

const seed = Number(process.env.METAL_ALLOC_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: small, fast, good enough to pick operations. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let server: TestServer;
let tenant: Client<typeof MachineService>;
let admin: Client<typeof AdminMachineService>;
const networks: Record<string, string> = {};
/** Registered machines that are dead or have no Wait stream: never candidates. */
let neverCandidates: string[] = [];

const rows = async <T>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: T[] }).rows;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 600_000 } });
  const fixture = await setUpPartition(server);
  networks.pa = fixture.primary.pa;
  networks.pb = fixture.primary.pb;
  for (const p of ["pc", "pr"]) {
    const quota = QUOTAS[p];
    await server.client(MdProjectService, server.adminToken).create({ project: { meta: { id: p }, name: p, tenantId: "t", quotas: quota === undefined ? {} : { machine: { max: quota } } } });
    networks[p] = (await server.client(NetworkService, server.adminToken).create({ project: p, partition: "p1" })).network!.id;
  }
  await insertWaitingMachines(server, MACHINES);
  // Two dead machines and two whose hammer never waits.
  neverCandidates = Array.from({ length: 4 }, () => randomUUID());
  await server.app.db.execute(sql`
    insert into machines (id, partition_id, size_id, rack_id, waiting_until, hardware)
    select id, 'p1', 's1', 'r1', case when n <= 2 then now() + interval '1 hour' end, ${S1_HARDWARE_JSON}::jsonb
    from jsonb_array_elements_text(${JSON.stringify(neverCandidates)}::jsonb) with ordinality as t(id, n)`);
  await server.app.db.execute(sql`
    insert into machine_events (machine_id, liveliness, events, last_event_time)
    select id, case when n <= 2 then 'Dead' else 'Alive' end, '[]'::jsonb, now() from jsonb_array_elements_text(${JSON.stringify(neverCandidates)}::jsonb) with ordinality as t(id, n)`);
  tenant = server.client(MachineService, server.adminToken);
  admin = server.client(AdminMachineService, server.adminToken);
});

interface MachineNow {
  id: string;
  project: string | null;
  uuid: string | null;
  state: string;
  waiting: boolean;
}

async function snapshot(): Promise<Map<string, MachineNow>> {
  const found = await rows<MachineNow>(sql`
    select id, project, allocation->>'uuid' as uuid, state, coalesce(waiting_until > now(), false) as waiting
    from machines where partition_id = 'p1'`);
  return new Map(found.map((m) => [m.id, m]));
}

type Op =
  | { kind: "bySize"; project: string }
  | { kind: "byId"; project: string; machine: string }
  | { kind: "free"; project: string; machine: string }
  | { kind: "setState"; machine: string; state: MachineState };

type Outcome = { ok: true; machine?: string; uuid?: string } | { ok: false; code: Code; message: string };

async function run(op: Op): Promise<Outcome> {
  try {
    switch (op.kind) {
      case "bySize":
      case "byId": {
        const req = { project: op.project, partition: "p1", size: "s1", image: "debian-12", name: "m", networks: [networks[op.project]!] };
        const { machine } = await tenant.create(op.kind === "byId" ? { ...req, machineId: op.machine } : req);
        return { ok: true, machine: machine!.id, uuid: machine!.allocation!.uuid };
      }
      case "free":
        await tenant.delete({ id: op.machine, project: op.project });
        return { ok: true, machine: op.machine };
      case "setState":
        await admin.setState({ id: op.machine, state: op.state, reason: op.state === MachineState.AVAILABLE ? "" : "property test" });
        return { ok: true };
    }
  } catch (err) {
    const e = ConnectError.from(err);
    return { ok: false, code: e.code, message: e.rawMessage };
  }
}

const pick = <T>(random: () => number, xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
/** Projects without a quota ask more often, so the pool runs low; the reserving project asks rarely, so its reservation matters. */
const WEIGHTED_PROJECTS = ["pa", "pb", "pb", "pc", "pb", "pr", "pc", "pb"];

function plan(random: () => number, before: Map<string, MachineNow>): Op[] {
  const all = [...before.values()];
  const allocated = all.filter((m) => m.project !== null);
  const candidates = all.filter((m) => m.project === null && m.state === "available" && m.waiting);
  const ops: Op[] = [];
  // Frees first, so that allocations by id can aim at machines freed in the same round.
  const n = 10 + Math.floor(random() * 5);
  // As many frees as keep a few candidates around: the pool runs low, but not dry for long.
  const share = candidates.length < 4 ? 0.45 : candidates.length > 10 ? 0.1 : 0.3;
  const frees = Math.min(allocated.length, Math.floor(n * share * (0.5 + random())));
  const freeing: string[] = [];
  for (let i = 0; i < frees; i++) {
    const m = pick(random, allocated);
    freeing.push(m.id);
    ops.push({ kind: "free", project: random() < 0.85 ? m.project! : pick(random, PROJECTS), machine: m.id });
  }
  while (ops.length < n) {
    const r = random();
    const project = pick(random, WEIGHTED_PROJECTS);
    if (r < 0.5) ops.push({ kind: "bySize", project });
    else if (r < 0.82) {
      const t = random();
      const machine =
        t < 0.25 && freeing.length > 0
          ? pick(random, freeing)
          : t < 0.35
            ? randomUUID()
            : t < 0.45
              ? pick(random, neverCandidates)
              : t < 0.75 && candidates.length > 0
                ? pick(random, candidates).id
                : pick(random, all).id;
      ops.push({ kind: "byId", project, machine });
    } else {
      const state = random() < 0.5 ? MachineState.AVAILABLE : random() < 0.5 ? MachineState.LOCKED : MachineState.TAINTED;
      ops.push({ kind: "setState", machine: pick(random, all).id, state });
    }
  }
  // In a random order: the frees must not always start first.
  for (let i = ops.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [ops[i], ops[j]] = [ops[j]!, ops[i]!];
  }
  return ops;
}

describe(`random allocation rounds against ${MACHINES} machines (seed ${seed})`, () => {
  it("hand out no machine twice or during reclaim, keep quotas and reservations, and refuse only what had to be refused", { timeout: scaled(180_000) }, async () => {
    const random = prng(seed);
    const reservations = server.client(AdminSizeReservations, server.adminToken);
    let reservation: string | undefined;
    /** What the calls answered: machine -> allocation uuid and project. */
    const ledger = new Map<string, { project: string; uuid: string }>();
    let round = 0;
    const fail = (msg: string): never => {
      throw new Error(`seed ${seed} (METAL_ALLOC_SEED=${seed} repeats it), round ${round}: ${msg}`);
    };
    const unusedReservations = (s: Map<string, MachineNow>) => {
      if (!reservation) return 0;
      const used = [...s.values()].filter((m) => m.project === RESERVED_FOR).length;
      return Math.max(0, RESERVED - used);
    };
    const freeCount = (s: Map<string, MachineNow>) => [...s.values()].filter((m) => m.project === null && !neverCandidates.includes(m.id)).length;

    for (round = 0; round < ROUNDS; round++) {
      // Size reservations come and go between rounds (every fourth round toggles it).
      if (round % 4 === 2) {
        if (reservation) {
          await reservations.delete({ id: reservation });
          reservation = undefined;
        } else {
          reservation = (await reservations.create({ sizeId: "s1", project: RESERVED_FOR, partitionIds: ["p1"], amount: RESERVED, name: "property" })).sizeReservation!.id;
        }
      }
      const before = await snapshot();
      const ops = plan(random, before);
      const outcomes = await Promise.all(ops.map(run));
      const after = await snapshot();
      const results = ops.map((op, i) => ({ op, out: outcomes[i]! }));

      // Every call answered with a code that belongs to its operation.
      for (const { op, out } of results) {
        if (out.ok) continue;
        const allowed: Record<Op["kind"], Code[]> = {
          bySize: [Code.ResourceExhausted],
          byId: [Code.ResourceExhausted, Code.FailedPrecondition, Code.NotFound],
          free: [Code.NotFound, Code.FailedPrecondition],
          setState: [],
        };
        if (!allowed[op.kind].includes(out.code)) fail(`${JSON.stringify(op)} answered ${Code[out.code]}: ${out.message}`);
      }

      // No machine handed out twice, nor one that was allocated when the round began (freed ones are in reclaim).
      const granted = results.filter((r) => (r.op.kind === "bySize" || r.op.kind === "byId") && r.out.ok);
      const grantedIds = granted.map((r) => (r.out as { machine: string }).machine);
      if (new Set(grantedIds).size !== grantedIds.length) fail(`a machine was granted twice in one round: ${grantedIds.join(", ")}`);
      for (const { op, out } of granted) {
        const m = before.get((out as { machine: string }).machine)!;
        if (m.project !== null) fail(`${m.id} was granted to ${op.kind === "free" || op.kind === "setState" ? "?" : op.project} while allocated to ${m.project} (or in reclaim after its free)`);
        if (!m.waiting) fail(`${m.id} was granted though it was not waiting`);
        if (neverCandidates.includes(m.id)) fail(`${m.id} was granted though it is dead or never waited`);
        const released = results.some((r) => r.op.kind === "setState" && r.op.machine === m.id && r.op.state === MachineState.AVAILABLE);
        if (m.state !== "available" && !released) fail(`${m.id} was granted though an operator had ${m.state} it`);
        if (op.kind === "byId" && op.machine !== m.id) fail(`asked for ${op.machine}, got ${m.id}`);
        if (ledger.has(m.id)) fail(`${m.id} granted while the ledger still holds it`);
        ledger.set(m.id, { project: (op as { project: string }).project, uuid: (out as { uuid: string }).uuid });
      }
      for (const { op, out } of results) if (op.kind === "free" && out.ok) ledger.delete(op.machine);

      // The database agrees with the answers.
      for (const m of after.values()) {
        const held = ledger.get(m.id);
        if ((held?.uuid ?? null) !== m.uuid || (held?.project ?? null) !== m.project) {
          fail(`machine ${m.id}: database has ${m.project}/${m.uuid}, the answers say ${held?.project}/${held?.uuid}`);
        }
      }

      // A machine freed in this round is not waiting: its reclaim has not ended.
      const freed = results.filter((r) => r.op.kind === "free" && r.out.ok).map((r) => (r.op as { machine: string }).machine);
      for (const id of freed) if (after.get(id)!.waiting) fail(`${id} was freed and waits again before its hammer did`);

      // Quotas hold.
      for (const [p, quota] of Object.entries(QUOTAS)) {
        const n = [...after.values()].filter((m) => m.project === p).length;
        if (quota !== undefined && n > quota) fail(`project ${p} holds ${n} machines, quota ${quota}`);
      }
      // Reservations hold: free machines cover what the reserving project has not used, once they did.
      if (reservation && freeCount(before) >= unusedReservations(before) && freeCount(after) < unusedReservations(after)) {
        fail(`${freeCount(after)} free machines left, ${unusedReservations(after)} still reserved for ${RESERVED_FOR}`);
      }

      // No spurious refusal.
      const candidatesBefore = [...before.values()].filter((m) => m.project === null && m.state === "available" && m.waiting && !neverCandidates.includes(m.id)).length;
      for (const [i, { op, out }] of results.entries()) {
        if (out.ok || (op.kind !== "bySize" && op.kind !== "byId")) continue;
        if (out.message.includes("quota")) {
          const start = [...before.values()].filter((m) => m.project === op.project).length;
          const successes = granted.filter((g) => (g.op as { project: string }).project === op.project).length;
          if (start + successes < QUOTAS[op.project]!) fail(`${op.project} refused by quota: ${start} held + ${successes} granted < ${QUOTAS[op.project]}`);
          continue;
        }
        if (op.kind === "byId") {
          // Another project's machine that stayed allocated reads as unknown, never as "allocated".
          const target = before.get(op.machine);
          const stillOthers = target?.project && target.project !== op.project && !freed.includes(op.machine);
          if (stillOthers && out.code !== Code.NotFound) fail(`${op.project} asked for ${op.machine} of ${target!.project}: ${Code[out.code]} ${out.message}`);
          continue;
        }
        // By size: could the round's other calls have taken or withdrawn every candidate there was?
        const others = results.filter((_, k) => k !== i);
        const takers = others.filter((r) => r.op.kind === "bySize" || r.op.kind === "byId" || r.op.kind === "setState").length;
        const reservedForOthers =
          reservation && op.project !== RESERVED_FOR
            ? unusedReservations(before) + others.filter((r) => r.op.kind === "free" && r.out.ok && before.get((r.op as { machine: string }).machine)?.project === RESERVED_FOR).length
            : 0;
        if (candidatesBefore - takers - reservedForOthers > 0) {
          fail(`${op.project} was refused (${out.message}) with ${candidatesBefore} candidates, at most ${takers} taken or withdrawn, ${reservedForOthers} reserved for others`);
        }
      }

      // The reclaimed machines' hammers wait again.
      if (freed.length > 0)
        await server.app.db.execute(sql`update machines set waiting_until = now() + interval '1 hour' where id in (select jsonb_array_elements_text(${JSON.stringify(freed)}::jsonb)) and allocation is null`);
    }
  });
});
