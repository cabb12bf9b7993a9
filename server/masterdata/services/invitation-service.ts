import { createHash, randomBytes, randomUUID } from "node:crypto";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type InvitationService, InvitationTarget } from "../../../gen/masterdata/v1/invitation_pb.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { MAX_PENDING_INVITATIONS } from "../../domain/tenancy.js";
import { exhausted, failedPrecondition, notFound } from "../../errors.js";
import { uuidv7 } from "../../ids.js";
import { pageRequest } from "../../repositories/paging.js";
import { targetKindOf, toInvitation } from "../convert/invitation.js";
import { invitationRepository as invitations } from "../repositories/invitation-repository.js";
import { membershipRepository as memberships } from "../repositories/membership-repository.js";
import { projectMemberRepository } from "../repositories/project-member-repository.js";
import { projectRepository } from "../repositories/project-repository.js";
import { tenantMemberRepository } from "../repositories/tenant-member-repository.js";
import { tenantRepository } from "../repositories/tenant-repository.js";
import { validateInvitationAccept, validateInvitationCreate, validateInvitationDelete, validateInvitationFind, validateInvitationGet } from "../validate/invitation.js";

export interface InvitationServiceDeps {
  db: DbHandle;
}

/** 32 random bytes: the secret's holder is whoever it was handed to. */
const newSecret = () => `inv_${randomBytes(32).toString("base64url")}`;
/** A secret is found by its SHA-256: the database never holds the secret itself. */
const hashOf = (secret: string) => createHash("sha256").update(secret, "utf8").digest("hex");
/** Unknown, used, withdrawn and expired secrets all answer this, and nothing else. */
const unknownSecret = () => new ConnectError("invitation not found (unknown, used, withdrawn or expired)", Code.NotFound);

/**
 * Invitations into tenants and projects (docs/tenancy.md): a secret shown
 * once and stored hashed, an expiry, used up by the first acceptance.
 */
export function createInvitationService({ db }: InvitationServiceDeps): ServiceImpl<typeof InvitationService> {
  return {
    async create(req) {
      const ttlMs = validateInvitationCreate(req);
      const kind = targetKindOf(req.target);
      const secret = newSecret();
      const row = await inTransaction(db, async (tx) => {
        // The target's row lock serialises invitations per target, so the bound below holds.
        const tenantId = kind === "tenant" ? (await tenantRepository.lock(tx, req.targetId)).id : (await projectRepository.lock(tx, req.targetId)).tenantId;
        await invitations.pruneExpired(tx, kind, req.targetId);
        if ((await invitations.countPending(tx, kind, req.targetId)) >= MAX_PENDING_INVITATIONS) {
          throw exhausted(`${kind} "${req.targetId}" has ${MAX_PENDING_INVITATIONS} pending invitations, the most it may have; delete some first`);
        }
        return invitations.create(tx, { id: uuidv7(), secretHash: hashOf(secret), target: kind, tenantId, projectId: kind === "project" ? req.targetId : null, role: req.role, createdBy: req.createdBy }, ttlMs);
      });
      return { invitation: toInvitation(row), secret };
    },

    async get(req) {
      validateInvitationGet(req);
      const row = await invitations.findBySecretHash(db, hashOf(req.secret));
      if (!row) throw unknownSecret();
      return { invitation: toInvitation(row) };
    },

    async accept(req) {
      validateInvitationAccept(req);
      const row = await inTransaction(db, async (tx) => {
        // The target is held before the invitation is locked, in the order a membership change takes them
        // (target row, then its invitations): no deadlock, and an owner's removal that committed first has
        // withdrawn that owner's invitations. Locked: of two acceptances of one invitation the second finds it gone.
        const hash = hashOf(req.secret);
        const peek = await invitations.findBySecretHash(tx, hash);
        if (!peek || (req.target !== InvitationTarget.UNSPECIFIED && peek.target !== targetKindOf(req.target))) throw unknownSecret();
        await tenantRepository.hold(tx, req.memberId).catch((err: unknown) => {
          if (ConnectError.from(err).code === Code.NotFound) throw failedPrecondition(`"${req.memberId}" is not a user (tenant) known to masterdata; sign in once first`);
          throw err;
        });
        if (peek.target === "tenant") await tenantRepository.hold(tx, peek.tenantId);
        else await projectRepository.hold(tx, peek.projectId!);
        const inv = await invitations.lockBySecretHash(tx, hash);
        if (!inv || inv.id !== peek.id) throw unknownSecret();
        if (inv.target === "tenant") {
          if (await memberships.tenantMembership(tx, inv.tenantId, req.memberId)) throw new ConnectError(`"${req.memberId}" is already a member of tenant "${inv.tenantId}"`, Code.AlreadyExists);
          await tenantMemberRepository.create(tx, { id: randomUUID(), tenantId: inv.tenantId, memberId: req.memberId, role: inv.role, annotations: {}, labels: [] });
        } else {
          const projectId = inv.projectId!;
          if (await memberships.projectMembership(tx, projectId, req.memberId)) throw new ConnectError(`"${req.memberId}" is already a member of project "${projectId}"`, Code.AlreadyExists);
          await projectMemberRepository.create(tx, { id: randomUUID(), projectId, tenantId: req.memberId, role: inv.role, annotations: {}, labels: [] });
        }
        await invitations.delete(tx, inv.id);
        return inv;
      });
      return { invitation: toInvitation(row) };
    },

    async find(req) {
      // The page token first, as every List does: a forged one is refused whatever else the request lacks.
      const paging = pageRequest(req.paging);
      validateInvitationFind(req);
      const kind = targetKindOf(req.target);
      const page = await invitations.page(db, kind, req.targetId, paging);
      return { invitations: page.items.map(toInvitation), nextPageToken: page.nextPageToken };
    },

    async delete(req) {
      validateInvitationDelete(req);
      const row = await inTransaction(db, (tx) => invitations.deleteOfTarget(tx, req.id, targetKindOf(req.target), req.targetId)).catch((err: unknown) => {
        if (ConnectError.from(err).code === Code.NotFound) throw notFound("invitation", req.id);
        throw err;
      });
      return { invitation: toInvitation(row) };
    },
  };
}
