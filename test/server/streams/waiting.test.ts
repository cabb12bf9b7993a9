import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../../server/db/handle.js";
import { WaitingRegistry } from "../../../server/sessions/wait/waiting.js";
import { eventually } from "../../helpers/eventually.js";
import { useMetalDatabase } from "../../helpers/metal-db.js";

let db: DbHandle;

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
});

const rows = async <R>(q: ReturnType<typeof sql>) => ((await db.execute(q)) as unknown as { rows: R[] }).rows;
const leaseOf = async (id: string) => {
  const until = (await rows<{ until: string | null }>(sql`select waiting_until as until from machines where id = ${id}`))[0]!.until;
  return until === null ? null : new Date(until);
};
const idList = (ids: string[]) => sql`(select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`;
const newMachines = async (n: number) => {
  const ids = Array.from({ length: n }, () => randomUUID());
  await db.execute(sql`insert into machines (id, partition_id) select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb), 'p1'`);
  return ids;
};

describe("WaitingRegistry", () => {
  it("makes a machine wait at once, renews all leases together, and stops only with the last stream of a machine", async () => {
    const registry = new WaitingRegistry(db, { leaseMs: 60_000, recheckMs: 60_000 });
    const [a, b] = await newMachines(2);
    const leaveA1 = await registry.add(a!, () => {});
    const leaveA2 = await registry.add(a!, () => {});
    const leaveB = await registry.add(b!, () => {});
    const first = (await leaseOf(a!))!.getTime();
    expect(first).toBeGreaterThan(Date.now() + 50_000);
    await eventually("the clock to move past the first lease's start", () => Date.now() + 60_000 > first);
    await registry.renewAll();
    expect((await leaseOf(a!))!.getTime()).toBeGreaterThan(first);
    expect(registry.size).toBe(2);

    // The hammer reconnected: its old stream ends, the new one still holds the machine.
    await leaveA1();
    expect(await leaseOf(a!)).not.toBeNull();
    await leaveA2();
    // Ended, not taken away (NULL is for allocating and freeing): not waiting any more.
    expect((await leaseOf(a!))!.getTime()).toBeLessThanOrEqual(Date.now());
    expect(await leaseOf(b!)).not.toBeNull();
    await leaveB();
    expect(registry.size).toBe(0);
  });

  it("renews a thousand and more machines in batches, and wakes only the streams of machines allocated meanwhile", async () => {
    const registry = new WaitingRegistry(db, { leaseMs: 60_000, recheckMs: 60_000 });
    const ids = await newMachines(2500);
    const woken = new Set<string>();
    for (const id of ids) await registry.add(id, () => woken.add(id));
    await db.execute(sql`update machines set waiting_until = now() where id in ${idList(ids)}`);
    await registry.renewAll();
    expect((await rows<{ n: number }>(sql`select count(*)::int as n from machines where id in ${idList(ids)} and waiting_until > now() + interval '50 seconds'`))[0]!.n).toBe(2500);

    const allocated = [ids[3]!, ids[1800]!];
    await db.execute(sql`update machines set allocation = '{}'::jsonb where id in ${idList(allocated)}`);
    await registry.recheckAll();
    expect([...woken].sort()).toEqual([...allocated].sort());
  });
});
