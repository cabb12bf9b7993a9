import { describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { WaitingRegistry } from "../../server/sessions/wait/waiting.js";
import { eventually } from "../helpers/eventually.js";

/**
 * A hammer that closes one Wait stream and opens the next at once (its
 * pre-install probe, a reconnect) must end up waiting: the old stream's lease
 * expiry and the new stream's lease start go to the database in that order,
 * even when the expiry is slow. A stand-in database handle lets the test hold
 * each UPDATE and see which were issued.
 */
function heldDatabase() {
  const issued: { value: unknown; release: () => void }[] = [];
  const db = {
    update: () => ({
      set: (value: unknown) => ({
        where: () => new Promise<void>((release) => issued.push({ value, release: () => release() })),
      }),
    }),
  };
  return { db: db as unknown as DbHandle, issued };
}

describe("waiting leases of one machine's streams", () => {
  it("a new stream's lease start waits for the ended stream's expiry, so the expiry cannot land last", async () => {
    const { db, issued } = heldDatabase();
    const registry = new WaitingRegistry(db, { leaseMs: 60_000, recheckMs: 60_000 });
    const id = "0196a3c4-0000-7000-8000-0000000000e1";

    const probe = registry.add(id, () => {});
    await eventually("the probe's lease start to be issued", () => issued.length === 1);
    issued[0]!.release();
    const leaveProbe = await probe;

    // The probe ends; its expiry is slow to commit.
    const expiring = leaveProbe();
    await eventually("the probe's expiry to be issued", () => issued.length === 2);
    // The hammer's real Wait stream arrives meanwhile: its lease start must wait for the expiry.
    const waiting = registry.add(id, () => {});
    const started = (async () => {
      await waiting;
      return issued.length;
    })();
    // A later write to another machine goes out at once: proof the registry is not simply stalled.
    const other = registry.add("0196a3c4-0000-7000-8000-0000000000e2", () => {});
    await eventually("the other machine's lease start to be issued", () => issued.length >= 3);
    expect(issued.map((w) => (w.value as { waitingUntil: unknown }).waitingUntil instanceof Date)).toEqual([true, false, true]);

    issued[1]!.release();
    await expiring;
    await eventually("the new stream's lease start to be issued after the expiry", () => issued.length === 4);
    expect((issued[3]!.value as { waitingUntil: unknown }).waitingUntil).toBeInstanceOf(Date);
    issued[3]!.release();
    issued[2]!.release();
    expect(await started).toBe(4);
    await other;
    expect(registry.size).toBe(2);
  });
});
