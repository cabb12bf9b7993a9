import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "../../server/db/handle.js";
import { contains, containsAddress, formatPrefix, overlap, type Prefix, parseAddress, parsePrefix } from "../../server/domain/ip-math.js";
import { uuidv7 } from "../../server/ids.js";
import {
  ASN_BASE,
  acquireAsn,
  acquireChildPrefix,
  acquireIp,
  acquireSpecificIp,
  acquireVrf,
  addTopLevelPrefix,
  releaseAsn,
  releaseIp,
  releasePrefix,
  releaseVrf,
} from "../../server/repositories/ipam-repository.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

const WORKERS = 32;
let db: DbHandle;
const P = (s: string) => parsePrefix(s) as Prefix;

beforeAll(async () => {
  ({ db } = await useMetalDatabase({ poolSize: WORKERS + 4 }));
  await db.execute(sql`insert into networks (id, kind) values ('net', 1), ('net6', 1), ('kids', 1)`);
});

const template = (networkId = "net") => ({ id: uuidv7(), networkId, project: "p1", type: 1 });
const count = async (table: string) => Number(((await db.execute(sql.raw(`select count(*)::int as n from ${table}`))) as any).rows[0].n);

/** Runs `WORKERS` loops in parallel, each calling `acquire` until it answers ResourceExhausted. */
async function drain<T>(acquire: () => Promise<T>): Promise<T[]> {
  const got: T[] = [];
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      for (;;) {
        try {
          got.push(await acquire());
        } catch (err) {
          expect(ConnectError.from(err).code, String(err)).toBe(Code.ResourceExhausted);
          return;
        }
      }
    }),
  );
  return got;
}

describe("IP addresses under concurrency", () => {
  it("hands out every address of a small prefix exactly once, then ResourceExhausted, and leaks nothing", async () => {
    const p = P("10.1.0.0/26");
    expect(await addTopLevelPrefix(db, p, "net")).toBe(true);
    const rows = await drain(() => acquireIp(db, [p], template(), "net"));
    const ips = rows.map((r) => r.ip);
    expect(ips).toHaveLength(62);
    expect(new Set(ips).size).toBe(62);
    expect(ips).not.toContain("10.1.0.0");
    expect(ips).not.toContain("10.1.0.63");
    for (const ip of ips) expect(containsAddress(p, parseAddress(ip)!)).toBe(true);
    await expect(acquireIp(db, [p], template(), "net")).rejects.toThrow('network "net" has no free address left');
    const released = await Promise.all(ips.map((ip) => releaseIp(db, ip)));
    expect(released.every(Boolean)).toBe(true);
    expect(await count("ips")).toBe(0);
    expect(await releasePrefix(db, formatPrefix(p))).toBe(true);
  });

  it("claims a given address once", async () => {
    const p = P("10.9.0.0/24");
    await addTopLevelPrefix(db, p, "net");
    const results = await Promise.all(Array.from({ length: 8 }, () => acquireSpecificIp(db, p, parseAddress("10.9.0.7")!, template())));
    expect(results.filter(Boolean)).toHaveLength(1);
    await releaseIp(db, "10.9.0.7");
  });

  it("allocates 10,000 addresses in an IPv6 /64 without enumerating it", async () => {
    const p = P("2001:db8:1::/64");
    await addTopLevelPrefix(db, p, "net6");
    const ips = new Set<string>();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 1250; i++) ips.add((await acquireIp(db, [p], template("net6"), "net6")).ip);
      }),
    );
    expect(ips.size).toBe(10_000);
    for (const ip of [...ips].slice(0, 100)) expect(containsAddress(p, parseAddress(ip)!)).toBe(true);
    await db.execute(sql`delete from ips where network_id = 'net6'`);
  });
});

describe("child prefixes under concurrency", () => {
  it("carves every /28 of a /24 exactly once, without overlap, and releases them all", async () => {
    const parent = P("10.2.0.0/24");
    await addTopLevelPrefix(db, parent, "kids");
    const kids = await drain(async () => {
      const child = await acquireChildPrefix(db, parent, 28, "kids");
      if (!child) throw new ConnectError("full", Code.ResourceExhausted);
      return child;
    });
    expect(kids).toHaveLength(16);
    for (const a of kids) {
      expect(contains(parent, a)).toBe(true);
      for (const b of kids) if (a !== b) expect(overlap(a, b)).toBe(false);
    }
    for (const k of kids) expect(await releasePrefix(db, formatPrefix(k))).toBe(true);
    expect(Number(((await db.execute(sql`select count(*)::int as n from prefixes where scope = '10.2.0.0/24'`)) as any).rows[0].n)).toBe(0);
  });

  it("mixes child lengths without overlap", async () => {
    const parent = P("10.4.0.0/24");
    await addTopLevelPrefix(db, parent, "kids");
    const got = (await Promise.all([25, 26, 27, 28, 26, 27, 28, 28].map((l) => acquireChildPrefix(db, parent, l, "kids")))).filter(Boolean) as Prefix[];
    for (const a of got) for (const b of got) if (a !== b) expect(overlap(a, b)).toBe(false);
  });

  it("allocates 10,000 child /64s of a /48 without enumerating it", async () => {
    const parent = P("2001:db8:100::/48");
    await addTopLevelPrefix(db, parent, "kids");
    const seen = new Set<string>();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 1250; i++) seen.add(formatPrefix((await acquireChildPrefix(db, parent, 64, "kids"))!));
      }),
    );
    expect(seen.size).toBe(10_000);
  });

  it("refuses overlapping top-level prefixes even when created in parallel", async () => {
    const candidates = ["10.3.0.0/16", "10.3.0.0/17", "10.3.128.0/17", "10.3.1.0/24", "10.3.200.0/24", "10.0.0.0/8", "10.3.255.0/28", "10.3.64.0/18"];
    const results = await Promise.all(candidates.map((c) => addTopLevelPrefix(db, P(c), "net")));
    const won = candidates.filter((_, i) => results[i]).map(P);
    expect(won.length).toBeGreaterThan(0);
    for (const a of won) for (const b of won) if (a !== b) expect(overlap(a, b)).toBe(false);
  });
});

describe("VRF and ASN pools under concurrency", () => {
  it("hands out the last free VRFs exactly once", async () => {
    await db.execute(sql`insert into vrfs select g, 'filler' from generate_series(1, 131072) g where g % 4000 <> 7`);
    const free = 131072 - Number(((await db.execute(sql`select count(*)::int as n from vrfs`)) as any).rows[0].n);
    const got = await drain(() => acquireVrf(db, "test"));
    expect(got).toHaveLength(free);
    expect(new Set(got).size).toBe(free);
    for (const v of got) expect(v % 4000).toBe(7);
    for (const v of got) expect(await releaseVrf(db, v)).toBe(true);
    await db.execute(sql`delete from vrfs where owner = 'filler'`);
    expect(await count("vrfs")).toBe(0);
  });

  it("hands out the last free ASNs exactly once", async () => {
    await db.execute(sql`insert into asns select ${ASN_BASE}::bigint + g, 'filler' from generate_series(1, 131072) g where g % 5000 <> 11`);
    const got = await drain(() => acquireAsn(db, "m"));
    expect(got.length).toBe(Math.floor((131072 - 11) / 5000) + 1);
    expect(new Set(got).size).toBe(got.length);
    for (const a of got) expect((a - ASN_BASE) % 5000).toBe(11);
    for (const a of got) expect(await releaseAsn(db, a)).toBe(true);
    await db.execute(sql`delete from asns`);
  });
});
