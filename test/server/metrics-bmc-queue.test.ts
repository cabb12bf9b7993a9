import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { metricsRepository } from "../../server/repositories/metrics-repository.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

// The BMC queue gauges read bmc_commands, which keeps every command ever sent (tenants' power commands too) until
// the machine goes: a scrape must read the pending commands only, not the whole history.
let db: DbHandle;
let url: string;
let pool: pg.Pool;

beforeAll(async () => {
  ({ db, url } = await useMetalDatabase());
  await db.execute(sql`insert into partitions (id) values ('p1'), ('p2')`);
  await db.execute(sql`insert into machines (id, partition_id, rack_id, state, state_reason) values ('m1', 'p1', 'r1', 'available', '')`);
  await db.execute(sql`
    insert into bmc_commands (id, machine_id, partition_id, command, status, deadline, created_at)
    select 'old-' || g, 'm1', 'p1', 'RESET', case when g % 2 = 0 then 'done' else 'timed_out' end, now(), now() - interval '1 day'
    from generate_series(1, 60000) g`);
  await db.execute(sql`
    insert into bmc_commands (id, machine_id, partition_id, command, status, deadline, created_at) values
      ('c1', 'm1', 'p1', 'RESET', 'pending', now() + interval '1 minute', now() - interval '600 seconds'),
      ('c2', 'm1', 'p1', 'LED_ON', 'pending', now() + interval '1 minute', now())`);
  await db.execute(sql`analyze bmc_commands`);
  // One connection: the statistics it flushes are those of the scrape it ran.
  pool = new pg.Pool({ connectionString: url, max: 1 });
});

afterAll(async () => {
  await pool?.end();
});

/** Pages of bmc_commands and its indexes read so far (from cache or disk), as the statistics collector has them. */
async function bmcPagesRead(): Promise<number> {
  // Flushed when the session next goes idle, i.e. right after this statement.
  await pool.query("select pg_stat_force_next_flush()");
  const { rows } = await pool.query<{ n: string }>(`
    select coalesce(heap_blks_read, 0) + coalesce(heap_blks_hit, 0) + coalesce(idx_blks_read, 0) + coalesce(idx_blks_hit, 0) as n
    from pg_statio_user_tables where relname = 'bmc_commands'`);
  return Number(rows[0]!.n);
}

describe("the BMC queue metrics", () => {
  it("count pending commands per partition and read only those, however many finished commands there are", async () => {
    const handle = drizzle({ client: pool }) as unknown as DbHandle;
    const before = await bmcPagesRead();
    const { bmcQueues } = await metricsRepository.snapshot(handle, { statementTimeoutMs: 5_000 });
    const read = (await bmcPagesRead()) - before;
    expect(bmcQueues).toHaveLength(1);
    expect(bmcQueues[0]).toMatchObject({ partition: "p1", pending: 2 });
    expect(bmcQueues[0]!.oldestAgeSeconds).toBeGreaterThanOrEqual(600);
    // Two pending among 60,002: a scan of the table, or of its whole index, reads 50 pages and more; one
    // descent of the index per partition a handful.
    expect(read).toBeLessThan(20);
  });
});
