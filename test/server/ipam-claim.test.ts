import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it, vi } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { type Prefix, parseAddress, parsePrefix } from "../../server/domain/ip-math.js";
import { uuidv7 } from "../../server/ids.js";
import { acquireIp, acquireIps, acquireSpecificIp, addTopLevelPrefix, releaseIp } from "../../server/repositories/ipam-repository.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

// The one-statement claim (random start, gap after it, wrap to the first
// address, gap before the start): every branch has to find the same free
// addresses whatever start the random pick gives it.
let db: DbHandle;
const P = (s: string) => parsePrefix(s) as Prefix;
const template = () => ({ id: uuidv7(), networkId: "claim", project: "p1", type: 1, name: "n", description: "d", labels: { a: "b" } });

beforeAll(async () => {
  ({ db } = await useMetalDatabase({ poolSize: 4 }));
  await db.execute(sql`insert into networks (id, kind) values ('claim', 1)`);
});

const exhaustedCode = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(ConnectError.from(err).code).toBe(Code.ResourceExhausted);
};

describe("claiming an address in one statement", () => {
  it("finds the free addresses before and after any random start, then reports the prefix full", async () => {
    const p = P("10.50.0.0/29"); // usable .1 - .6
    await addTopLevelPrefix(db, p, "claim");
    for (const a of ["10.50.0.1", "10.50.0.4", "10.50.0.5", "10.50.0.6"]) expect(await acquireSpecificIp(db, p, parseAddress(a)!, template())).toBeTruthy();
    // Starts on .4-.6 have nothing after them and must wrap past the taken .1; 40 rounds miss that with probability 2^-40.
    for (let round = 0; round < 40; round++) {
      const a = await acquireIp(db, [p], template(), "claim");
      const b = await acquireIp(db, [p], template(), "claim");
      expect([a.ip, b.ip].sort()).toEqual(["10.50.0.2", "10.50.0.3"]);
      await exhaustedCode(acquireIp(db, [p], template(), "claim"));
      expect(await releaseIp(db, a.ip)).toBe(true);
      expect(await releaseIp(db, b.ip)).toBe(true);
    }
  });

  it("wraps to a free first address when everything from the start on is taken", async () => {
    const p = P("10.53.0.0/29");
    await addTopLevelPrefix(db, p, "claim");
    for (const a of ["10.53.0.3", "10.53.0.4", "10.53.0.5", "10.53.0.6"]) expect(await acquireSpecificIp(db, p, parseAddress(a)!, template())).toBeTruthy();
    for (let round = 0; round < 40; round++) {
      const got = [(await acquireIp(db, [p], template(), "claim")).ip, (await acquireIp(db, [p], template(), "claim")).ip];
      expect(got.sort()).toEqual(["10.53.0.1", "10.53.0.2"]);
      await exhaustedCode(acquireIp(db, [p], template(), "claim"));
      for (const ip of got) expect(await releaseIp(db, ip)).toBe(true);
    }
  });

  it("returns the stored row", async () => {
    const p = P("10.51.0.0/24");
    await addTopLevelPrefix(db, p, "claim");
    const t = template();
    const row = await acquireIp(db, [p], t, "claim");
    expect(row).toMatchObject({ id: t.id, prefix: "10.51.0.0/24", networkId: "claim", project: "p1", type: 1, name: "n", description: "d", machineId: null, labels: { a: "b" }, version: 1 });
    expect(row.createdAt).toBeInstanceOf(Date);
    expect(row.createdAt.getTime()).not.toBeNaN();
  });

  it("hands out a single-address prefix once, and falls through to the next prefix", async () => {
    const one = P("10.52.0.7/32");
    const next = P("2001:db8:52::/127");
    await addTopLevelPrefix(db, one, "claim");
    await addTopLevelPrefix(db, next, "claim");
    expect((await acquireIp(db, [one], template(), "claim")).ip).toBe("10.52.0.7");
    await exhaustedCode(acquireIp(db, [one], template(), "claim"));
    const got = [(await acquireIp(db, [one, next], template(), "claim")).ip, (await acquireIp(db, [one, next], template(), "claim")).ip];
    expect(got.sort()).toEqual(["2001:db8:52::", "2001:db8:52::1"]);
    await exhaustedCode(acquireIp(db, [one, next], template(), "claim"));
  });
});

describe("acquiring several addresses at once", () => {
  it("settles roomy prefixes with one insert, falls back for a collision, and keeps the request order", async () => {
    const v4 = P("10.60.0.0/24");
    const v6 = P("2001:db8:60::/64");
    const tiny = P("10.61.0.0/30");
    for (const p of [v4, v6, tiny]) await addTopLevelPrefix(db, p, "claim");
    // Every random pick below lands on the first usable address; take it in the /24 so that pick collides.
    vi.spyOn(Math, "random").mockReturnValue(0);
    try {
      expect(await acquireSpecificIp(db, v4, parseAddress("10.60.0.1")!, template())).toBeTruthy();
      const rows = await acquireIps(db, [
        { prefixes: [v4], template: template(), networkLabel: "claim" },
        { prefixes: [v6], template: template(), networkLabel: "claim" },
        { prefixes: [tiny], template: template(), networkLabel: "claim" },
      ]);
      expect(rows.map((r) => r.ip)).toEqual(["10.60.0.2", "2001:db8:60::1", "10.61.0.1"]);
      expect(new Set(rows.map((r) => r.id)).size).toBe(3);
    } finally {
      vi.restoreAllMocks();
    }
  });
});
