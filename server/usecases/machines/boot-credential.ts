import type { MachineCredentials } from "../../auth/machine-credential.js";
import type { DbHandle } from "../../db/handle.js";
import { notFound } from "../../errors.js";
import { machineCredentialRepository as credentials } from "../../repositories/machine-credential-repository.js";

export interface BootCredential {
  machineId: string;
  secret: string;
  expiresAt: Date;
  /** Where the machine's hammer reaches the control plane: its leaves' metal-cores. */
  coreEndpoints: string[];
}

/**
 * The credential the boot path hands a booting machine (pixie asks, per MAC):
 * - a registered machine of the partition with a NIC of this MAC gets one
 *   for itself, in its current generation;
 * - otherwise a machine that says which UUID it is (the firmware's) gets a
 *   first-boot credential for that UUID, bound to the MAC, unless the UUID is
 *   a registered machine without this MAC (a MAC may not claim another
 *   machine), which is NotFound like an unknown MAC;
 * - otherwise there is nothing to bind a credential to: undefined.
 */
export async function bootCredential(db: DbHandle, issuer: MachineCredentials, req: { partition: string; mac: string; uuid: string }): Promise<BootCredential | undefined> {
  const known = await credentials.findByMac(db, req.partition, req.mac);
  let machineId: string;
  let generation: number;
  if (known) {
    machineId = known.id;
    generation = known.generation;
  } else {
    if (req.uuid === "") return undefined;
    machineId = req.uuid;
    const state = await credentials.stateOf(db, machineId);
    if (state?.registered) throw notFound("machine with MAC", req.mac);
    generation = state?.generation ?? 0;
  }
  const { secret, expiresAt } = await issuer.issue({ machineId, partition: req.partition, generation, mac: req.mac });
  return { machineId, secret, expiresAt, coreEndpoints: await credentials.coreEndpoints(db, req.partition, known ? machineId : undefined) };
}

/** A fresh credential for the caller's machine, in the generation its current one names (checked by the auth interceptor). */
export async function renewCredential(issuer: MachineCredentials, caller: { id: string; partition: string; generation: number; mac: string }): Promise<{ secret: string; expiresAt: Date }> {
  return issuer.issue({ machineId: caller.id, partition: caller.partition, generation: caller.generation, mac: caller.mac });
}
