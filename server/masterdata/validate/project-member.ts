import { type ProjectMember, ProjectMemberRole } from "../../../gen/masterdata/v1/project_member_pb.js";
import { validator } from "../../validate/validator.js";
import { checkId, checkMeta } from "./common.js";

/** Create and Update carry a whole membership; update also its id and the version read. */
export function validateProjectMember(m: ProjectMember | undefined, opts: { create: boolean }): asserts m is ProjectMember {
  const v = validator();
  if (!m) return v.add("project_member", "is required").check();
  checkMeta(v, "project_member.meta", m.meta, { ...opts, kind: "ProjectMember" });
  checkId(v, "project_member.project_id", m.projectId);
  checkId(v, "project_member.tenant_id", m.tenantId);
  v.enumValue("project_member.role", m.role, ProjectMemberRole);
  v.check();
}
