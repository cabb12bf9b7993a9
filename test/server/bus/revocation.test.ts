import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { connectAsync } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectRole } from "../../../gen/metal/api/v1/common_pb.js";
import { createRevocationFanout, type RevocationFanout } from "../../../server/auth/revocation.js";
import { createTokenAuthority, type TokenAuthority } from "../../../server/auth/token-authority.js";
import { createMqttBus, type MqttBus } from "../../../server/bus/mqtt-bus.js";
import type { DbHandle } from "../../../server/db/handle.js";
import { noRoles, type Roles } from "../../../server/domain/roles.js";
import type { Logger } from "../../../server/logger.js";
import { liveReplicaIds } from "../../../server/repositories/replica-liveness-repository.js";
import { useMetalDatabase } from "../../helpers/metal-db.js";
import { type PrivateBroker, startPrivateBroker } from "../../helpers/mosquitto.js";
import { scaled } from "../../helpers/timeouts.js";

// Two replicas' token authorities on one database, each with its MQTT bus on one (private) Mosquitto.
let db: DbHandle;
let broker: PrivateBroker;
const buses: MqttBus[] = [];
const fanouts: RevocationFanout[] = [];
let a: TokenAuthority;
let b: TokenAuthority;
const PROJECT = "3f1c0b1e-6a8d-4c5e-9a49-0d6c8f8b7a11";

const warnings: unknown[] = [];
const log = { warn: (o: unknown) => warnings.push(o), error: () => {}, info: () => {}, debug: () => {} } as unknown as Logger;

async function replica(id: string, others: () => Promise<readonly string[]>, ackTimeoutMs = scaled(20_000)): Promise<TokenAuthority> {
  const bus = await createMqttBus({ url: broker.url, prefix: "rev", replicaId: id });
  buses.push(bus);
  const revocations = createRevocationFanout({ bus, replicaId: id, liveReplicas: others, ackTimeoutMs, log });
  fanouts.push(revocations);
  return createTokenAuthority(db, { revocations });
}

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  broker = await startPrivateBroker();
  // The bound is long here on purpose: the revoke returns early only because B answered.
  a = await replica("A", async () => ["B"]);
  b = await replica("B", async () => ["A"]);
});

afterAll(async () => {
  for (const f of fanouts) f.close();
  await Promise.all(buses.map((x) => x.close()));
  await broker.dispose();
});

const issue = (by: TokenAuthority, roles: Roles = noRoles(), parentId?: string) =>
  by.issue(db, { subject: "tess", description: "", roles, createdBy: "test", expiresAt: new Date(Date.now() + 3_600_000), parentId });

async function refusal(by: TokenAuthority, secret: string): Promise<string> {
  const err = await by.verify(secret).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(err, "the token should have been refused").toBeDefined();
  expect(err!.code).toBe(Code.Unauthenticated);
  return err!.rawMessage;
}

describe("token revocation across replicas over MQTT", () => {
  it("a token B has cached is refused on B as soon as the revoke on A returned", async () => {
    const { row, secret } = await issue(a);
    expect((await b.verify(secret)).subject).toBe("tess");
    await a.revoke(db, row.id);
    expect(await refusal(b, secret)).toContain("revoked");
  });

  it("takes the tokens minted from the revoked one with it on every replica", async () => {
    const parent = await issue(a);
    const child = await issue(a, noRoles(), parent.row.id);
    await b.verify(parent.secret);
    await b.verify(child.secret);
    await a.revoke(db, parent.row.id);
    expect(await refusal(b, child.secret)).toContain("revoked");
  });

  it("a project deleted on A: B stops authorising its tokens on that project at once", async () => {
    const { secret } = await issue(a, { ...noRoles(), projectRoles: { [PROJECT]: ProjectRole.EDITOR } });
    expect((await b.verify(secret)).roles.projectRoles).toEqual({ [PROJECT]: ProjectRole.EDITOR });
    await a.dropProjectGrants(db, PROJECT);
    // Its only grant is gone, so the token is revoked altogether.
    expect(await refusal(b, secret)).toContain("revoked");
  });

  it("returns after the bound when a live replica does not answer, naming it", async () => {
    const c = await replica("C", async () => ["A", "Z"], scaled(300));
    const { row, secret } = await issue(c);
    await a.verify(secret);
    await c.revoke(db, row.id);
    expect(warnings).toContainEqual(expect.objectContaining({ missing: ["Z"] }));
    expect(await refusal(a, secret)).toContain("revoked");
  });

  it("ignores forged revocation messages of the wrong shape and keeps answering real ones", async () => {
    const outsider = await connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      for (const junk of ["x", '{"o":"X","n":"1","ids":"not-a-list"}', '{"o":"X/+","n":"1","ids":[]}', `{"o":"X","n":"1","ids":[${'"a",'.repeat(500)}"a"]}`]) {
        await outsider.publishAsync("rev/v1/wake/tokens/revoked", JSON.stringify({ o: "X", p: junk }));
      }
    } finally {
      await outsider.endAsync(true);
    }
    const { row, secret } = await issue(a);
    await b.verify(secret);
    await a.revoke(db, row.id);
    expect(await refusal(b, secret)).toContain("revoked");
  });
});

describe("live replicas", () => {
  it("are the other replicas whose heartbeat is within the timeout, by the database's clock", async () => {
    await db.execute(sql`insert into replicas (id, address, heartbeat_at) values
      ('self', '127.0.0.1:1', now()), ('fresh', '127.0.0.1:2', now() - interval '5 seconds'), ('stale', '127.0.0.1:3', now() - interval '60 seconds')`);
    expect((await liveReplicaIds(db, "self", 30_000)).sort()).toEqual(["fresh"]);
  });
});
