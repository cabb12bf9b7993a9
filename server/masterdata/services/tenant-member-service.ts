import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { eq } from "drizzle-orm";
import { TenantMemberService } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { versionOf } from "../../convert/meta.js";
import { inTransaction, type Db } from "../../db/database.js";
import { invalidArgument } from "../../errors.js";
import { pageRequest } from "../../repositories/paging.js";
import { metaFields, toTenantMember } from "../convert/masterdata.js";
import { tenantMembers, tenantMemberStore, tenantStore } from "../repositories/masterdata-repository.js";
import { validateFilters, validateIdRequest, validateMember } from "../validate.js";

export function createTenantMemberService({ db }: { db: Db<any> }): ServiceImpl<typeof TenantMemberService> {
  return {
    async create(req) {
      const m = req.tenantMember;
      validateMember("tenant_member", m, { tenant_id: m?.tenantId ?? "", member_id: m?.memberId ?? "" }, true);
      const row = await inTransaction(db, async (tx) => {
        // Lock both sides: neither can be deleted before this membership commits.
        await tenantStore.lock(tx, m!.tenantId);
        await tenantStore.lock(tx, m!.memberId);
        return tenantMemberStore.create(tx, {
          id: m!.meta?.id || randomUUID(),
          ...metaFields(m!.meta),
          tenantId: m!.tenantId,
          memberId: m!.memberId,
          role: m!.role,
        });
      });
      return { tenantMember: toTenantMember(row) };
    },
    async update(req) {
      const m = req.tenantMember;
      validateMember("tenant_member", m, { tenant_id: m?.tenantId ?? "", member_id: m?.memberId ?? "" }, false);
      const row = await inTransaction(db, async (tx) => {
        const current = await tenantMemberStore.get(tx, m!.meta!.id);
        if (current.tenantId !== m!.tenantId || current.memberId !== m!.memberId) {
          throw invalidArgument("invalid request: tenant_member: tenant_id and member_id cannot change; create a new membership");
        }
        return tenantMemberStore.update(tx, m!.meta!.id, versionOf(m!.meta!.version), { ...metaFields(m!.meta), role: m!.role });
      });
      return { tenantMember: toTenantMember(row) };
    },
    async delete(req) {
      validateIdRequest(req.id);
      return { tenantMember: toTenantMember(await inTransaction(db, (tx) => tenantMemberStore.delete(tx, req.id))) };
    },
    async get(req) {
      validateIdRequest(req.id);
      return { tenantMember: toTenantMember(await tenantMemberStore.get(db, req.id)) };
    },
    async find(req) {
      validateFilters({ tenant_id: req.tenantId, member_id: req.memberId }, {});
      const page = await tenantMemberStore.find(
        db,
        [
          req.tenantId !== undefined ? eq(tenantMembers.tenantId, req.tenantId) : undefined,
          req.memberId !== undefined ? eq(tenantMembers.memberId, req.memberId) : undefined,
        ],
        {},
        pageRequest(req.paging),
      );
      return { tenantMembers: page.items.map(toTenantMember), nextPageToken: page.nextPageToken };
    },
    async getHistory(req) {
      validateIdRequest(req.id);
      return { tenantMember: toTenantMember(await tenantMemberStore.at(db, req.id, req.at ? timestampDate(req.at) : undefined)) };
    },
  };
}
