import { sql } from "drizzle-orm";
import pg from "pg";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { formatAddress, type Prefix, parsePrefix, randomBelow, usableRange } from "../../server/domain/ip-math.js";
import { uuidv7 } from "../../server/ids.js";
import { acquireIp, acquireSpecificIp, addTopLevelPrefix, releaseIp } from "../../server/repositories/ipam-repository.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import { measure } from "./harness.js";

/**
 * `npx tsx test/bench/ipam-breakdown.ts`: where the time of one IP
 * acquire+release pair goes. Variants run interleaved in rounds against one
 * database (other processes share the machine), each reported as the median
 * ratio to the raw one-column INSERT+DELETE of the same round.
 */
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const OPS = Number(process.env.OPS ?? 2000);

const scratch = await createScratchDatabase("metal_bench_ipam_breakdown");
const database = await openMetalDatabase({ url: scratch.url, dataDir: undefined, poolSize: 4 });
const raw = new pg.Pool({ connectionString: scratch.url, max: 1 });
const db = database.db;
try {
  await raw.query("create table raw_baseline (n bigint primary key)");
  await db.execute(sql`insert into networks (id, kind) values ('bench', 3)`);
  const small = parsePrefix("10.10.0.0/22") as Prefix;
  await addTopLevelPrefix(db, small, "bench");
  const t = () => ({ id: uuidv7(), networkId: "bench", project: "bench", type: 1 });
  for (let i = 0; i < 340; i++) await acquireIp(db, [small], t(), "bench");

  // Copies of ips without the foreign key, and with fewer indexes, filled alike.
  await raw.query("create table ips_nofk (like ips including all)");
  await raw.query("create table ips_ipkey (like ips including defaults)");
  await raw.query("alter table ips_ipkey add primary key (id), add unique (ip)");
  await raw.query("create table ips_onlyip (like ips including defaults)");
  await raw.query("alter table ips_onlyip add unique (ip)");
  for (const tbl of ["ips_nofk", "ips_ipkey", "ips_onlyip"]) await raw.query(`insert into ${tbl} select * from ips`);
  await raw.query("vacuum analyze");

  const taken = new Set((await raw.query("select host(ip) as ip from ips")).rows.map((r) => r.ip as string));
  const { first, last } = usableRange(small);
  const free: string[] = [];
  for (let v = first; v <= last; v++) {
    const ip = formatAddress({ family: 4, value: v });
    if (!taken.has(ip)) free.push(ip);
  }
  const pick = () => free[Math.floor(Math.random() * free.length)]!;

  const direct = {
    session: {
      prepareQuery: (q: { sql: string; params: unknown[] }, _f: unknown, name: string) => ({ execute: () => raw.query({ name, text: q.sql, values: q.params }) }),
    },
  } as unknown as typeof db;
  const cols = "id, ip, prefix, network_id, project, name, description, type, machine_id, labels";
  const insertSql = (tbl: string, returning: string) => `insert into ${tbl} (${cols}) values ($1, $2::inet, $3::cidr, $4, $5, $6, $7, $8, $9, $10::jsonb) on conflict (ip) do nothing returning ${returning}`;
  const params = (ip: string) => [uuidv7(), ip, "10.10.0.0/22", "bench", "bench", "", "", 1, null, "{}"];
  let seq = 0;
  const variant = (tbl: string, returning: string, named: boolean) => {
    const ins = insertSql(tbl, returning);
    const del = `delete from ${tbl} where ip = $1::inet returning id`;
    const n = `${tbl}_${returning.replace(/\W/g, "")}`;
    return async () => {
      const ip = pick();
      const a = await raw.query(named ? { name: `i_${n}`, text: ins, values: params(ip) } : { text: ins, values: params(ip) });
      if (a.rowCount !== 1) throw new Error("lost insert");
      await raw.query(named ? { name: `d_${n}`, text: del, values: [ip] } : { text: del, values: [ip] });
    };
  };

  const variants: Record<string, () => Promise<unknown>> = {
    "raw one-column INSERT+DELETE": async () => {
      const n = seq++;
      await raw.query("insert into raw_baseline values ($1)", [n]);
      await raw.query("delete from raw_baseline where n = $1", [n]);
    },
    "library acquireIp+releaseIp": async () => releaseIp(db, (await acquireIp(db, [small], t(), "bench")).ip),
    "library through pg directly (no drizzle session)": async () => releaseIp(direct, (await acquireIp(direct, [small], t(), "bench")).ip),
    "library: random named INSERT x2, then claim": async () => {
      for (let i = 0; i < 2; i++) {
        const row = await acquireSpecificIp(db, small, { family: 4, value: first + randomBelow(last - first + 1n) }, t());
        if (row) return releaseIp(db, row.ip);
      }
      return releaseIp(db, (await acquireIp(db, [small], t(), "bench")).ip);
    },
    "pg ips, known-free ip, returning *": variant("ips", "*", false),
    "pg ips, known-free ip, returning * (named)": variant("ips", "*", true),
    "pg ips, known-free ip, returning id (named)": variant("ips", "id", true),
    "pg ips without FK (named)": variant("ips_nofk", "id", true),
    "pg ips without FK, only id+ip keys (named)": variant("ips_ipkey", "id", true),
    "pg ips without FK, only ip key (named)": variant("ips_onlyip", "id", true),
  };

  // Each variant alternates op by op with the baseline, so both see the same
  // load from whatever else runs on the machine; the ratio is the baseline's
  // time over the variant's for the same number of pairs.
  const baseline = variants["raw one-column INSERT+DELETE"]!;
  const ratios: Record<string, number[]> = {};
  const rates: Record<string, number[]> = {};
  for (const fn of Object.values(variants)) await measure("warmup", 200, 1, fn);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of Object.entries(variants)) {
      if (fn === baseline) continue;
      let tBase = 0;
      let tSubject = 0;
      for (let i = 0; i < OPS; i++) {
        const a = performance.now();
        await baseline();
        const b = performance.now();
        await fn();
        tSubject += performance.now() - b;
        tBase += b - a;
      }
      (ratios[name] ??= []).push(tBase / tSubject);
      (rates[name] ??= []).push((OPS / tSubject) * 1000);
      (rates["raw one-column INSERT+DELETE"] ??= []).push((OPS / tBase) * 1000);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.table(
    Object.keys(variants).map((name) => ({
      variant: name,
      "median pairs/s": median(rates[name]!).toFixed(0),
      "median ratio": ratios[name] ? median(ratios[name]).toFixed(2) : "1.00",
      ratios: (ratios[name] ?? []).map((x) => x.toFixed(2)).join(" "),
    })),
  );
} finally {
  await raw.end();
  await database.close();
  await scratch.drop();
}
