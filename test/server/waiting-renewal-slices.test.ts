import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { WaitingRegistry } from "../../server/sessions/wait/waiting.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

/**
 * The renewal timer renews one slice of the waiting machines at a time, so a
 * replica with thousands of them never writes all their rows in one burst;
 * each machine is still renewed once per round of slices.
 */
let db: DbHandle;
const ids = Array.from({ length: 60 }, (_, i) => `0196a3c4-0000-7000-8000-${String(i).padStart(12, "0")}`);

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  for (const id of ids) await db.execute(sql`insert into machines (id) values (${id})`);
});

/** Machines whose lease lies at least a minute ahead (renewed with the registry's 10-minute lease). */
const renewed = async () => ((await db.execute(sql`select id from machines where waiting_until > now() + interval '1 minute'`)) as unknown as { rows: { id: string }[] }).rows.map((r) => r.id).sort();

describe("waiting lease renewal in slices", () => {
  it("renews each machine in exactly one slice, every machine once per round, no slice all of them", async () => {
    const registry = new WaitingRegistry(db, { leaseMs: 600_000, recheckMs: 600_000 });
    for (const id of ids) await registry.add(id, () => {});
    // As if the leases were about to run out.
    await db.execute(sql`update machines set waiting_until = now() + interval '5 seconds'`);
    const seen = new Set<string>();
    let largest = 0;
    for (let slice = 0; slice < 10; slice++) {
      await registry.renewSlice(slice);
      const now = await renewed();
      const added = now.filter((id) => !seen.has(id));
      largest = Math.max(largest, added.length);
      for (const id of added) seen.add(id);
      // What a slice renewed stays renewed; later slices only add.
      expect(now.length).toBe(seen.size);
    }
    expect([...seen].sort()).toEqual([...ids].sort());
    expect(largest).toBeLessThan(ids.length / 2);
  });
});
