import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import pg from "pg";
import { createTransport } from "../../client/transport.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { S1_HARDWARE_JSON, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer } from "../helpers/server-launch.js";
import { type Comparison, measure } from "./harness.js";

const MACHINES = Number(process.env.BENCH_ALLOC_MACHINES ?? 1000);
const CLIENTS = Number(process.env.BENCH_ALLOC_CLIENTS ?? 64);
/** Allocated first and not measured: pool connections, JIT and caches warm up as in a running server. */
const WARMUP = 200;

/**
 * Machine allocation over the tenant API with 64 clients against 1,000
 * waiting machines (their waiting leases and liveliness written directly, as
 * if 1,000 metal-hammers held Wait streams), and the time from an allocation
 * to a real open Wait stream receiving it. Baseline: the same number of round
 * trips of a trivial INSERT through pg.
 */
export async function benchAllocation(): Promise<Comparison[]> {
  // Keepalives every 200 ms so that opening a stream (first keepalive) is quick; leases as in production.
  const { server, metalDatabaseUrl, stop } = await launchServer({ waitTiming: { keepaliveMs: 200, leaseMs: 60_000, recheckMs: 60_000 } });
  const { app, url, adminToken: token } = server;
  const raw = new pg.Pool({ connectionString: metalDatabaseUrl, max: 32 });
  try {
    const fixture = await setUpPartition(server);
    // A bigger super network prefix is not needed: each allocation takes one IP per family of the project network (/24 + /64).
    const nets = [fixture.primary.pb];
    const ids = Array.from({ length: MACHINES + WARMUP + 1 }, () => randomUUID());
    await app.db.execute(sql`
      insert into machines (id, partition_id, size_id, rack_id, waiting_until, hardware)
      select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb), 'p1', 's1', case when random() < 0.5 then 'r1' else 'r2' end, now() + interval '1 hour', ${S1_HARDWARE_JSON}::jsonb`);
    await app.db.execute(sql`
      insert into machine_events (machine_id, liveliness, events, last_event_time)
      select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb), 'Alive', '[]'::jsonb, now()`);
    // The project network is a /24: 254 addresses. Give pb a /20 instead for 1,000 machines.
    await app.db.execute(sql`delete from networks where id = ${nets[0]}`);
    const tenant = createClient(MachineService, createTransport({ baseUrl: url, protocol: "connect", binary: true, token }));
    const { NetworkService } = await import("../../gen/metal/api/v1/network_pb.js");
    const big = createClient(NetworkService, createTransport({ baseUrl: url, protocol: "connect", binary: true, token }));
    const network = (await big.create({ project: "pb", partition: "p1", length: { ipv4: 20 } })).network!.id;

    // One machine keeps a real Wait stream open; it is allocated by id and the delivery is timed.
    const watched = ids[MACHINES + WARMUP]!;
    await app.db.execute(sql`update machines set waiting_until = null where id = ${watched}`);
    const boot = createClient(BootService, createTransport({ baseUrl: url, protocol: "grpc", token: fixture.infraToken }));
    const latencies: number[] = [];
    await measure("warmup", WARMUP, CLIENTS, (i) => tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `warm${i}`, networks: [network] }));
    const allocs = await measure("machine allocation", MACHINES, CLIENTS, (i) => tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `m${i}`, networks: [network] }));
    let seq = 0;
    await raw.query("create table bench_baseline (n bigint primary key)");
    const base = await measure("raw INSERT", MACHINES, CLIENTS, () => raw.query("insert into bench_baseline values ($1)", [seq++]));
    const dup = (await app.db.execute(sql`select count(*) - count(distinct ip) as d from ips`)) as unknown as { rows: { d: string }[] };
    if (Number(dup.rows[0]!.d) !== 0) throw new Error("an address was handed out twice");
    const overflow = await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "over", networks: [network] }).then(
      () => "allocated",
      () => "refused",
    );
    if (overflow !== "refused") throw new Error("an allocation beyond the waiting machines should find none");

    // Notification latency: open the stream, allocate by id, time until the stream has it.
    for (let round = 0; round < 20; round++) {
      const id = randomUUID();
      await app.db.execute(sql`insert into machines (id, partition_id, size_id, rack_id, hardware) values (${id}, 'p1', 's1', 'r1', ${S1_HARDWARE_JSON}::jsonb)`);
      await app.db.execute(sql`insert into machine_events (machine_id, liveliness, events, last_event_time) values (${id}, 'Alive', '[]'::jsonb, now())`);
      const stream = boot.wait({ partition: "p1", machineId: id })[Symbol.asyncIterator]();
      await stream.next(); // the first keepalive: the stream is open
      let committed = 0;
      const got = (async () => {
        for (;;) {
          const n = await stream.next();
          if (n.done || n.value.allocation) return performance.now();
        }
      })();
      await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: `w${round}`, networks: [network], machineId: id }).then(() => (committed = performance.now()));
      latencies.push((await got) - committed);
    }
    latencies.sort((a, b) => a - b);
    const notify = {
      name: "allocation -> Wait stream",
      ops: latencies.length,
      concurrency: 1,
      seconds: 0,
      perSecond: 0,
      p50Ms: latencies[Math.floor(latencies.length / 2)]!,
      p99Ms: latencies[latencies.length - 1]!,
    };
    return [
      { what: `machine allocations, ${CLIENTS} clients, ${MACHINES} waiting machines (0 duplicates, one more refused)`, subject: allocs, baseline: base, target: ">= 300/s, p99 < 250 ms" },
      {
        what: "allocation committed -> open Wait stream has it (20 rounds, one stream; max as p99; baseline = itself)",
        subject: notify,
        baseline: notify,
        target: "p99 < 50 ms (10,000 streams: the Wait stream row)",
      },
    ];
  } finally {
    await raw.end();
    await stop();
  }
}
