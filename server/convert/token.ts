import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type SigningKey, SigningKeySchema } from "../../gen/metal/admin/v1/token_pb.js";
import { type Token, type TokenRoles, TokenRolesSchema, TokenSchema } from "../../gen/metal/api/v1/token_pb.js";
import type { SigningKeyInfo } from "../auth/signing-keys.js";
import type { StoredRoles, TokenRow } from "../db/schema/index.js";
import { noRoles, type Roles } from "../domain/roles.js";

export function toStoredRoles(r: Roles): StoredRoles {
  return { admin: r.adminRole, projects: r.projectRoles, tenants: r.tenantRoles, infraPartition: r.infraPartition };
}

export function toRoles(s: StoredRoles): Roles {
  return { adminRole: s.admin, projectRoles: s.projects, tenantRoles: s.tenants, infraPartition: s.infraPartition };
}

export function rolesFromProto(r: TokenRoles | undefined): Roles {
  if (!r) return noRoles();
  return { adminRole: r.adminRole, projectRoles: { ...r.projectRoles }, tenantRoles: { ...r.tenantRoles }, infraPartition: r.infraPartition };
}

export function rolesToProto(r: Roles): TokenRoles {
  return create(TokenRolesSchema, r);
}

export function toProtoToken(row: TokenRow): Token {
  return create(TokenSchema, {
    id: row.id,
    subject: row.subject,
    description: row.description,
    roles: rolesToProto(toRoles(row.roles)),
    expiresAt: timestampFromDate(row.expiresAt),
    createdAt: timestampFromDate(row.createdAt),
    createdBy: row.createdBy,
    revokedAt: row.revokedAt ? timestampFromDate(row.revokedAt) : undefined,
  });
}

export function toProtoSigningKey(k: SigningKeyInfo): SigningKey {
  return create(SigningKeySchema, { id: k.id, createdAt: timestampFromDate(k.createdAt) });
}
