import type { ServiceImpl } from "@connectrpc/connect";
import type { TenantMemberService } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction } from "../../db/database.js";
import type { DbHandle } from "../../db/handle.js";
import { invalidArgument } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { dateFromTimestamp } from "../convert/meta.js";
import { tenantMemberPatchFrom, tenantMemberRowFromCreate, toTenantMember } from "../convert/tenant-member.js";
import { tenantMemberRepository as members } from "../repositories/tenant-member-repository.js";
import { tenantRepository } from "../repositories/tenant-repository.js";
import { validateFindRequest, validateHistoryRequest, validateIdRequest } from "../validate/common.js";
import { validateTenantMember } from "../validate/tenant-member.js";

export interface TenantMemberServiceDeps {
  db: DbHandle;
}

/** Memberships of tenants (users) in tenants. */
export function createTenantMemberService({ db }: TenantMemberServiceDeps): ServiceImpl<typeof TenantMemberService> {
  return {
    async create(req) {
      validateTenantMember(req.tenantMember, { create: true });
      const m = req.tenantMember;
      const row = await inTransaction(db, async (tx) => {
        // Held (FOR KEY SHARE), both sides cannot be deleted before this commits;
        // holds do not block each other, so crossed pairs cannot deadlock.
        await tenantRepository.hold(tx, m.tenantId);
        if (m.memberId !== m.tenantId) await tenantRepository.hold(tx, m.memberId);
        return members.create(tx, tenantMemberRowFromCreate(m));
      });
      return { tenantMember: toTenantMember(row) };
    },

    async update(req) {
      validateTenantMember(req.tenantMember, { create: false });
      const m = req.tenantMember;
      const meta = m.meta!;
      const row = await inTransaction(db, async (tx) => {
        const current = await members.get(tx, meta.id);
        if (current.tenantId !== m.tenantId || current.memberId !== m.memberId) {
          throw invalidArgument("invalid request: tenant_member: tenant_id and member_id cannot change; create a new membership instead");
        }
        return members.update(tx, meta.id, versionOf(meta.version), tenantMemberPatchFrom(m));
      });
      return { tenantMember: toTenantMember(row) };
    },

    async delete(req) {
      validateIdRequest(req);
      return { tenantMember: toTenantMember(await inTransaction(db, (tx) => members.delete(tx, req.id))) };
    },

    async get(req) {
      validateIdRequest(req);
      return { tenantMember: toTenantMember(await members.get(db, req.id)) };
    },

    async find(req) {
      validateFindRequest({ ids: { tenant_id: req.tenantId, member_id: req.memberId }, annotations: req.annotations, labels: req.labels });
      const page = await members.find(db, req, pageRequest(req.paging));
      return { tenantMembers: page.items.map(toTenantMember), nextPageToken: page.nextPageToken };
    },

    async getHistory(req) {
      validateHistoryRequest(req);
      const at = req.at ? dateFromTimestamp(req.at) : undefined;
      return { tenantMember: toTenantMember(await members.at(db, req.id, at)) };
    },
  };
}
