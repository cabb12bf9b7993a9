import { create } from "@bufbuild/protobuf";
import { type ProjectMember, ProjectMemberSchema } from "../../../gen/masterdata/v1/project_member_pb.js";
import type { NewProjectMemberRow, ProjectMemberRow } from "../db/schema/index.js";
import { metaColumnsFrom, newId, toMeta } from "./meta.js";

const PROJECT_MEMBER_KIND = "ProjectMember";

export function toProjectMember(row: ProjectMemberRow): ProjectMember {
  return create(ProjectMemberSchema, { meta: toMeta(PROJECT_MEMBER_KIND, row), projectId: row.projectId, tenantId: row.tenantId, role: row.role });
}

/** The columns an update replaces; the two sides are not among them. */
export function projectMemberPatchFrom(m: ProjectMember): Omit<NewProjectMemberRow, "id" | "projectId" | "tenantId"> {
  return { ...metaColumnsFrom(m.meta), role: m.role };
}

export function projectMemberRowFromCreate(m: ProjectMember): NewProjectMemberRow {
  return { id: newId(m.meta), ...projectMemberPatchFrom(m), projectId: m.projectId, tenantId: m.tenantId };
}
