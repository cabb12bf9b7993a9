import { and, asc, count, eq, gt, lte, type SQL, sql } from "drizzle-orm";
import type { DbHandle } from "../../db/handle.js";
import { notFound } from "../../errors.js";
import { type PageRequest, toPage } from "../../repositories/paging.js";
import { type InvitationRow, invitations, type NewInvitationRow } from "../db/schema/index.js";

export type InvitationTargetKind = "tenant" | "project";

/** The rows of one tenant's (tenant invitations only) or one project's invitations. */
const ofTarget = (target: InvitationTargetKind, targetId: string): SQL =>
  target === "tenant" ? and(eq(invitations.target, "tenant"), eq(invitations.tenantId, targetId))! : and(eq(invitations.target, "project"), eq(invitations.projectId, targetId))!;

const unexpired = (): SQL => gt(invitations.expiresAt, sql`now()`);

/** Pending invitations, found by the hash of their secret. Every read leaves expired rows out. */
export const invitationRepository = {
  /** Inserts the row; `expiresInMs` counts from the database's clock. */
  async create(tx: DbHandle, row: Omit<NewInvitationRow, "expiresAt" | "createdAt">, expiresInMs: number): Promise<InvitationRow> {
    const at = sql`date_trunc('milliseconds', statement_timestamp())`;
    const [created] = await tx
      .insert(invitations)
      .values({ ...row, createdAt: at, expiresAt: sql`${at} + (${expiresInMs}::bigint * interval '1 millisecond')` } as never)
      .returning();
    return created!;
  },

  /** Deletes the target's expired invitations (housekeeping before a new one). */
  async pruneExpired(tx: DbHandle, target: InvitationTargetKind, targetId: string): Promise<void> {
    await tx.delete(invitations).where(and(ofTarget(target, targetId), lte(invitations.expiresAt, sql`now()`)));
  },

  /** How many unexpired invitations the target has. */
  async countPending(tx: DbHandle, target: InvitationTargetKind, targetId: string): Promise<number> {
    const [row] = await tx
      .select({ n: count() })
      .from(invitations)
      .where(and(ofTarget(target, targetId), unexpired()));
    return row?.n ?? 0;
  },

  /** The unexpired invitation with this secret hash, or undefined. */
  async findBySecretHash(db: DbHandle, hash: string): Promise<InvitationRow | undefined> {
    const [row] = await db
      .select()
      .from(invitations)
      .where(and(eq(invitations.secretHash, hash), unexpired()));
    return row;
  },

  /** Like findBySecretHash, locking the row until the transaction ends: one acceptance at a time. */
  async lockBySecretHash(tx: DbHandle, hash: string): Promise<InvitationRow | undefined> {
    const [row] = await tx
      .select()
      .from(invitations)
      .where(and(eq(invitations.secretHash, hash), unexpired()))
      .for("update");
    return row;
  },

  /** One page of the target's unexpired invitations, oldest first (ids are UUIDv7). */
  async page(db: DbHandle, target: InvitationTargetKind, targetId: string, page: PageRequest) {
    const filters = [ofTarget(target, targetId), unexpired()];
    if (page.after !== undefined) filters.push(gt(invitations.id, page.after));
    const rows = await db
      .select()
      .from(invitations)
      .where(and(...filters))
      .orderBy(asc(invitations.id))
      .limit(page.limit + 1);
    return toPage(rows, page.limit, (r) => r.id);
  },

  /** Deletes one invitation; NotFound unless it exists, is unexpired and belongs to the target. */
  async deleteOfTarget(tx: DbHandle, id: string, target: InvitationTargetKind, targetId: string): Promise<InvitationRow> {
    const [row] = await tx
      .delete(invitations)
      .where(and(eq(invitations.id, id), ofTarget(target, targetId), unexpired()))
      .returning();
    if (!row) throw notFound("invitation", id);
    return row;
  },

  /**
   * Withdraws the pending invitations `createdBy` made into a tenant (its
   * projects' included) or into one project: an owner who is removed or
   * demoted leaves no secret behind to come back with.
   */
  async deleteCreatedBy(tx: DbHandle, scope: { tenantId: string } | { projectId: string }, createdBy: string): Promise<number> {
    const where = "tenantId" in scope ? eq(invitations.tenantId, scope.tenantId) : and(eq(invitations.target, "project"), eq(invitations.projectId, scope.projectId));
    const rows = await tx
      .delete(invitations)
      .where(and(where, eq(invitations.createdBy, createdBy)))
      .returning({ id: invitations.id });
    return rows.length;
  },

  /** Deletes one invitation by id (used up). */
  async delete(tx: DbHandle, id: string): Promise<void> {
    await tx.delete(invitations).where(eq(invitations.id, id));
  },
};
