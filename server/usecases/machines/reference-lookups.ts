import { singleFlight } from "../../auth/project-directory.js";
import type { DbHandle } from "../../db/handle.js";
import type { FilesystemLayoutRow, ImageRow, NetworkRow, PartitionRow, SizeReservationRow, SizeRow } from "../../db/schema/index.js";
import { filesystemLayoutRepository as layouts } from "../../repositories/image-repository.js";
import { machineAllocationRepository as allocations } from "../../repositories/machine-repository.js";
import { networkRepository as networks } from "../../repositories/network-repository.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { sizeReservationRepository as sizeReservations, sizeRepository as sizes } from "../../repositories/size-repository.js";
import { assertImageAllowed, lookupImage } from "../images/lookup.js";

/**
 * The reference data an allocation reads (partition, size, image, layouts,
 * size-image constraint, networks and their prefixes, size reservations), with concurrent identical reads collapsed into one
 * database round trip. Nothing is cached beyond the call in flight, so an
 * answer is never older than the request that asked: a burst of allocations
 * into one partition (a cluster scaling up) reads its references once per
 * wave, not once per machine.
 */
export interface ReferenceLookups {
  partition(id: string): Promise<PartitionRow>;
  size(id: string): Promise<SizeRow>;
  image(ref: string, feature: number): Promise<ImageRow>;
  layouts(): Promise<FilesystemLayoutRow[]>;
  assertImageAllowed(sizeId: string, image: ImageRow): Promise<void>;
  network(id: string): Promise<NetworkRow>;
  /** The prefixes of each network, as CIDR strings. */
  prefixes(networkIds: readonly string[]): Promise<Map<string, string[]>>;
  reservations(partition: string, size: string): Promise<SizeReservationRow[]>;
  /**
   * Waiting machines and the project's machines per rack. Not reference data,
   * but only a steer for the rack choice (the locked row is checked again),
   * so concurrent allocations may share one read as they would share a snapshot.
   */
  rackLoad(partition: string, size: string, project: string, role: string, placementTags: readonly string[]): Promise<RackLoad[]>;
}

export type RackLoad = Awaited<ReturnType<typeof allocations.rackLoad>>[number];

export function createReferenceLookups(db: DbHandle): ReferenceLookups {
  const partition = singleFlight<PartitionRow>();
  const size = singleFlight<SizeRow>();
  const image = singleFlight<ImageRow>();
  const all = singleFlight<FilesystemLayoutRow[]>();
  const allowed = singleFlight<void>();
  const network = singleFlight<NetworkRow>();
  const prefixes = singleFlight<Map<string, string[]>>();
  const reserved = singleFlight<SizeReservationRow[]>();
  const load = singleFlight<RackLoad[]>();
  return {
    partition: (id) => partition(id, () => partitions.get(db, id)),
    size: (id) => size(id, () => sizes.get(db, id)),
    image: (ref, feature) => image(`${feature}\u0000${ref}`, () => lookupImage(db, ref, feature)),
    layouts: () => all("", () => layouts.all(db)),
    assertImageAllowed: (sizeId, row) => allowed(`${sizeId}\u0000${row.id}`, () => assertImageAllowed(db, sizeId, row)),
    network: (id) => network(id, () => networks.get(db, id)),
    prefixes: (ids) => prefixes(ids.join("\u0000"), () => networks.prefixesOf(db, [...ids])),
    reservations: (partition, size) => reserved(`${partition}\u0000${size}`, () => sizeReservations.forSizeIn(db, size, partition)),
    rackLoad: (partition, size, project, role, tags) => load([partition, size, project, role, ...tags].join("\u0000"), () => allocations.rackLoad(db, partition, size, project, role, tags)),
  };
}
