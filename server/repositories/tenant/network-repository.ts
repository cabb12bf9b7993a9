import { and, eq, inArray, or, type SQL } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { type NetworkRow, type NewNetworkRow, networks } from "../../db/schema/index.js";
import { NetworkKind } from "../../domain/network.js";
import type { ProjectScope } from "../../domain/project-scope.js";
import { networkRepository } from "../network-repository.js";
import type { PageRequest } from "../paging.js";
import { deleteById, getById, lockById, updateVersioned } from "../versioned.js";
import { projectIn } from "./scope-sql.js";

/**
 * What the scope may use (the SQL form of the domain's mayUseNetwork): its own
 * private networks, and shared child and external networks of anyone.
 */
const usable = (scope: ProjectScope): SQL => or(and(eq(networks.kind, NetworkKind.CHILD), projectIn(networks.project, scope)), inArray(networks.kind, [NetworkKind.CHILD_SHARED, NetworkKind.EXTERNAL]))!;

/** What the scope may change and free: the child networks it allocated, shared or not. */
const owned = (scope: ProjectScope): SQL => and(projectIn(networks.project, scope), inArray(networks.kind, [NetworkKind.CHILD, NetworkKind.CHILD_SHARED]))!;

/**
 * Networks as a tenant call sees them. Every other network (another project's
 * private one, a partition's super or underlay network) answers NotFound like
 * one that does not exist, because the scope is part of each query.
 */
export const tenantNetworkRepository = {
  /** A network the scope may use (see it, take addresses from it). */
  getUsable: (db: DbHandle, scope: ProjectScope, id: string): Promise<NetworkRow> => getById(db, networks, "network", id, usable(scope)),

  /** The scope's own networks, one page at a time. */
  list: (db: DbHandle, scope: ProjectScope, page: PageRequest) => networkRepository.list(db, { projects: scope.projects }, page),

  /** One of the scope's own child networks, locked until the transaction ends. */
  lockOwned: (tx: DbHandle, scope: ProjectScope, id: string): Promise<NetworkRow> => lockById(tx, networks, "network", id, owned(scope)),

  updateOwned: (db: DbHandle, scope: ProjectScope, id: string, version: number, patch: Partial<NewNetworkRow>): Promise<NetworkRow> => updateVersioned(db, networks, "network", id, version, patch, owned(scope)),

  /** Deletes one of the scope's own child networks; its prefixes go with it. */
  deleteOwned: (tx: DbHandle, scope: ProjectScope, id: string): Promise<NetworkRow> => deleteById(tx, networks, "network", id, owned(scope)),
};
