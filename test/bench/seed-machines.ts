import { randomUUID } from "node:crypto";
import type pg from "pg";
import { S1_HARDWARE_JSON } from "../helpers/partition-fixture.js";

/**
 * `n` machines of partition p1 with size s1's hardware, spread over racks r1
 * and r2, alive; `waiting` also writes their leases (as if hammers held Wait
 * streams), otherwise their own streams make them wait.
 */
export async function insertMachines(raw: pg.Pool, n: number, opts: { waiting?: boolean } = {}): Promise<string[]> {
  const ids = Array.from({ length: n }, () => randomUUID());
  await raw.query(
    `insert into machines (id, partition_id, size_id, rack_id, waiting_until, hardware)
     select id, 'p1', 's1', case when random() < 0.5 then 'r1' else 'r2' end, case when $3 then now() + interval '1 hour' end, $2::jsonb from unnest($1::text[]) as id`,
    [ids, S1_HARDWARE_JSON, opts.waiting ?? false],
  );
  await raw.query(`insert into machine_events (machine_id, liveliness, events, last_event_time) select id, 'Alive', '[]'::jsonb, now() from unnest($1::text[]) as id`, [ids]);
  return ids;
}
