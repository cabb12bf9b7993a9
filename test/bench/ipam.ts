import { sql } from "drizzle-orm";
import pg from "pg";
import { openMetalDatabase } from "../../server/db/metal-database.js";
import { type Prefix, parsePrefix } from "../../server/domain/ip-math.js";
import { uuidv7 } from "../../server/ids.js";
import { acquireChildPrefix, acquireIp, addTopLevelPrefix, releaseIp } from "../../server/repositories/ipam-repository.js";
import { createScratchDatabase } from "../helpers/postgres.js";
import { type Comparison, measure } from "./harness.js";

/**
 * IPAM through its library API (what allocation calls inside its transaction),
 * against the same number of round trips of a trivial INSERT/DELETE on a
 * one-column table through a plain pg pool.
 */
export async function benchIpam(): Promise<Comparison[]> {
  const scratch = await createScratchDatabase("metal_bench_ipam");
  const database = await openMetalDatabase({ url: scratch.url, dataDir: undefined, poolSize: 34 });
  const raw = new pg.Pool({ connectionString: scratch.url, max: 34 });
  const db = database.db;
  const out: Comparison[] = [];
  try {
    await raw.query("create table raw_baseline (n bigint primary key)");
    await db.execute(sql`insert into networks (id, kind) values ('bench', 3), ('bench-kids', 1)`);
    const small = parsePrefix("10.10.0.0/22") as Prefix;
    const big = parsePrefix("10.20.0.0/16") as Prefix;
    const parent = parsePrefix("10.128.0.0/9") as Prefix;
    for (const p of [small, big]) await addTopLevelPrefix(db, p, "bench");
    await addTopLevelPrefix(db, parent, "bench-kids");
    const t = () => ({ id: uuidv7(), networkId: "bench", project: "bench", type: 1 });
    let seq = 0;
    const rawPair = async () => {
      const n = seq++;
      await raw.query("insert into raw_baseline values ($1)", [n]);
      await raw.query("delete from raw_baseline where n = $1", [n]);
    };
    const rawInsert = async () => {
      await raw.query("insert into raw_baseline values ($1)", [seq++]);
    };

    // Keep a third of the small prefix allocated so the gap search has something to walk.
    for (let i = 0; i < 340; i++) await acquireIp(db, [small], t(), "bench");
    await measure("warmup", 300, 1, async () => releaseIp(db, (await acquireIp(db, [small], t(), "bench")).ip));
    const pairs = await measure("IP acquire+release", 5000, 1, async () => releaseIp(db, (await acquireIp(db, [small], t(), "bench")).ip));
    const pairsBase = await measure("raw INSERT+DELETE", 5000, 1, rawPair);
    out.push({ what: "IP acquire+release pairs, 1 client (/22, 1/3 full)", subject: pairs, baseline: pairsBase, target: ">= 1500/s" });

    const acquires = await measure("IP acquire", 20000, 32, () => acquireIp(db, [big], t(), "bench"));
    const acquiresBase = await measure("raw INSERT", 20000, 32, rawInsert);
    const dup = (await db.execute(sql`select count(*) - count(distinct ip) as d from ips`)) as unknown as { rows: { d: string }[] };
    if (Number(dup.rows[0]!.d) !== 0) throw new Error("duplicate addresses handed out");
    out.push({ what: "IP acquires, 32 clients, one /16 (20,000 of 65,534; 0 duplicates)", subject: acquires, baseline: acquiresBase, target: ">= 3000/s" });

    const kids = await measure("child /24 acquire", 4000, 8, () => acquireChildPrefix(db, parent, 24, "bench-kids"));
    const kidsBase = await measure("raw INSERT", 4000, 8, rawInsert);
    out.push({ what: "child prefix (/24 of a /9) allocations, 8 clients", subject: kids, baseline: kidsBase });
  } finally {
    await raw.end();
    await database.close();
    await scratch.drop();
  }
  return out;
}
