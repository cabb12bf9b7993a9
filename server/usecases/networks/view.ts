import type { Network } from "../../../gen/metal/api/v1/network_pb.js";
import { toProtoNetwork } from "../../convert/network.js";
import type { DbHandle } from "../../db/handle.js";
import type { NetworkRow } from "../../db/schema/index.js";
import { networkRepository as networks } from "../../repositories/network-repository.js";

/** Networks as proto, with their prefixes and (in two grouped queries for the whole page) their consumption. */
export async function renderNetworks(db: DbHandle, rows: NetworkRow[]): Promise<Network[]> {
  const ids = rows.map((r) => r.id);
  const [prefixes, usage] = await Promise.all([networks.prefixesOf(db, ids), networks.usage(db, ids)]);
  return rows.map((r) => toProtoNetwork(r, prefixes.get(r.id) ?? [], usage.get(r.id)));
}

export async function renderNetwork(db: DbHandle, row: NetworkRow): Promise<Network> {
  return (await renderNetworks(db, [row]))[0]!;
}
