import { decodeJwt, jwtVerify, SignJWT } from "jose";
import type { DbHandle } from "../db/handle.js";
import type { MachineCaller, Principal } from "../domain/roles.js";
import { noRoles } from "../domain/roles.js";
import { unauthenticated } from "../errors.js";
import { machineCredentialRepository } from "../repositories/machine-credential-repository.js";
import { tokenRepository } from "../repositories/token-repository.js";
import { createKeyRing } from "./signing-keys.js";

/**
 * Machine credentials: what metal-hammer on one machine presents, handed out
 * through the boot path (BootService.Boot, asked by pixie per MAC) and
 * renewed by the hammer while it runs (BootService.RenewCredential).
 *
 * - Bound to one machine id and partition; the auth rule (domain/authorize.ts)
 *   lets it call only methods that declare `machine` and only for that machine.
 * - Short-lived (DEFAULT_LIFETIME_S), signed with the replicas' shared key
 *   under an issuer of its own, so no other verifier accepts it and it
 *   accepts no metal token.
 * - It names the machine's credential generation. A successful installation
 *   moves the generation on (usecases/machines/lifecycle.ts), which voids
 *   every credential issued before: the installed OS (the tenant's) can do
 *   nothing with what the discovery image held. One call stays open to the
 *   previous generation: InstallationSucceeded itself, which is idempotent,
 *   so the hammer may retry it after an answer that got lost.
 * - A machine the control plane does not know yet gets a credential of
 *   generation 0 that also names the booting MAC: it may register only
 *   hardware that has a NIC with that MAC (see the BootService handler).
 */
export const MACHINE_ISSUER = "metal-machine";
export const MACHINE_AUDIENCE = "metal.infra.v1.BootService";
const TYP = "metal-machine+jwt";
const ALG = "EdDSA";
export const DEFAULT_MACHINE_CREDENTIAL_LIFETIME_S = 3600;

export interface MachineCredentialClaims {
  machineId: string;
  partition: string;
  generation: number;
  /** The MAC the credential was handed out for ("" when renewed for a registered machine). */
  mac: string;
}

export interface MachineCredentials {
  issue(claims: MachineCredentialClaims): Promise<{ secret: string; expiresAt: Date }>;
  /** Whether `secret` looks like a machine credential (its unverified issuer); decides which verifier to ask. */
  isMachineCredential(secret: string): boolean;
  /**
   * The caller behind a machine credential, checked against the machine's row:
   * Unauthenticated when the signature, issuer or expiry is wrong, when the
   * machine is registered in another partition or without a NIC of the
   * credential's MAC, or when the credential's generation is void. A
   * credential one generation behind comes back `superseded`.
   */
  verify(secret: string): Promise<Principal>;
}

const isUint = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

export async function createMachineCredentials(db: DbHandle, lifetimeS = DEFAULT_MACHINE_CREDENTIAL_LIFETIME_S): Promise<MachineCredentials> {
  const row = await tokenRepository.newestSigningKey(db);
  if (!row) throw new Error("no signing key in the database: the token authority creates it before machine credentials are made");
  // The token authority's keys: signed with the newest, checked with the one the credential names (see signing-keys.ts).
  const keys = createKeyRing(db);

  async function claimsOf(secret: string): Promise<MachineCredentialClaims & { exp: number }> {
    const publicKey = await keys.keyFor(secret);
    if (!publicKey) throw unauthenticated("the machine credential is not valid");
    try {
      const { payload } = await jwtVerify(secret, publicKey, { issuer: MACHINE_ISSUER, audience: MACHINE_AUDIENCE, algorithms: [ALG], typ: TYP });
      const { sub, partition, gen, mac, exp } = payload as Record<string, unknown>;
      if (typeof sub !== "string" || sub === "" || typeof partition !== "string" || !isUint(gen) || typeof mac !== "string" || !isUint(exp)) throw new Error("claims");
      return { machineId: sub, partition, generation: gen, mac, exp };
    } catch (err) {
      const expired = (err as { code?: string }).code === "ERR_JWT_EXPIRED";
      throw unauthenticated(expired ? "the machine credential has expired: a new boot (or BootService.RenewCredential in time) gets a fresh one" : "the machine credential is not valid");
    }
  }

  return {
    async issue(c) {
      const now = Math.floor(Date.now() / 1000);
      // Whole seconds: the lifetime may be any number of milliseconds, a JWT's exp (and claimsOf) wants an integer.
      const exp = now + Math.floor(lifetimeS);
      const { kid, privateKey } = await keys.signer(db);
      const secret = await new SignJWT({ partition: c.partition, gen: c.generation, mac: c.mac })
        .setProtectedHeader({ alg: ALG, kid, typ: TYP })
        .setIssuer(MACHINE_ISSUER)
        .setAudience(MACHINE_AUDIENCE)
        .setSubject(c.machineId)
        .setIssuedAt(now)
        .setExpirationTime(exp)
        .sign(privateKey);
      return { secret, expiresAt: new Date(exp * 1000) };
    },

    isMachineCredential(secret) {
      try {
        return decodeJwt(secret).iss === MACHINE_ISSUER;
      } catch {
        return false;
      }
    },

    async verify(secret) {
      const c = await claimsOf(secret);
      const state = await machineCredentialRepository.stateOf(db, c.machineId, c.mac);
      const voided = () => unauthenticated("the machine credential is void: the machine's installation succeeded since it was issued; a new boot gets a new one");
      let superseded = false;
      if (!state) {
        // Not registered (yet, or deleted since): only a first-boot credential is any good.
        if (c.generation !== 0) throw voided();
      } else {
        // A bare record (events or Dhcp naming the UUID, from any partition's infra token) is no claim on the
        // machine: its Register where it is cabled takes the record over (domain/bare-record.ts), so only a
        // registered machine's partition binds the credential.
        if (state.registered && state.partition !== c.partition) throw unauthenticated("the machine credential is not valid");
        // Bound to the MAC it was handed out for: a first-boot credential that named the UUID of a machine
        // whose registered hardware turned out not to have that MAC acts for nothing (nor does any other once the NIC is gone).
        if (state.registered && c.mac !== "" && !state.hasMac) throw unauthenticated("the machine credential was handed out for a MAC the machine does not have; a new boot gets a new one");
        if (c.generation === state.generation - 1) superseded = true;
        else if (c.generation !== state.generation) throw voided();
      }
      const machine: MachineCaller = { id: c.machineId, partition: c.partition, generation: c.generation, mac: c.mac, superseded };
      return { tokenId: `machine:${c.machineId}`, subject: `machine:${c.machineId}`, expiresAt: new Date(c.exp * 1000), roles: noRoles(), machine };
    },
  };
}
