import { randomUUID } from "node:crypto";
import { decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createMachineCredentials } from "../../server/auth/machine-credential.js";
import { createReplicaCredentials } from "../../server/auth/replica-credential.js";
import { createTokenAuthority, type TokenAuthority } from "../../server/auth/token-authority.js";
import type { DbHandle } from "../../server/db/handle.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

let db: DbHandle;
let authority: TokenAuthority;
const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid;

beforeAll(async () => {
  ({ db } = await useMetalDatabase({ poolSize: 2 }));
  authority = await createTokenAuthority(db);
});

/**
 * Machine and replica credentials have no token row: they are signed with the
 * shared keys too, so a rotation must not strand them on a replica that
 * started before it (or after it).
 */
describe("credentials without a token row across a signing-key rotation", () => {
  it("keeps replica credentials verifying both ways", async () => {
    const early = await createReplicaCredentials(db, "early");
    const before = await early.current();
    const { key } = await authority.rotateSigningKey(db);
    const late = await createReplicaCredentials(db, "late");
    const after = await late.current();
    expect(kidOf(after)).toBe(key.id);
    expect(kidOf(before)).not.toBe(key.id);
    // "early" loaded the keys before the rotation and meets the new key here; "late" checks the old one.
    expect(await early.verify(after)).toBe("late");
    expect(await late.verify(before)).toBe("early");
  });

  it("keeps machine credentials verifying both ways, and signs new ones with the newest key", async () => {
    const early = await createMachineCredentials(db);
    const claims = () => ({ machineId: randomUUID(), partition: "p1", generation: 0, mac: "aa:bb:cc:dd:ee:01" });
    const before = await early.issue(claims());
    const { key } = await authority.rotateSigningKey(db);
    const late = await createMachineCredentials(db);
    const after = await late.issue(claims());
    expect(kidOf(after.secret)).toBe(key.id);
    // The replica started before the rotation signs with the new key too.
    expect(kidOf((await early.issue(claims())).secret)).toBe(key.id);
    expect((await early.verify(after.secret)).machine?.generation).toBe(0);
    expect((await late.verify(before.secret)).machine?.generation).toBe(0);
  });
});
