import type { Project } from "../../../gen/masterdata/v1/project_pb.js";
import { validator } from "../../validate/validator.js";
import { checkId, checkMeta, checkQuotas } from "./common.js";

/** Create and Update carry a whole project; update also its id and the version read. */
export function validateProject(p: Project | undefined, opts: { create: boolean }): asserts p is Project {
  const v = validator();
  if (!p) return v.add("project", "is required").check();
  checkMeta(v, "project.meta", p.meta, { ...opts, kind: "Project" });
  v.requiredText("project.name", p.name, 128).text("project.description", p.description, 1024);
  checkId(v, "project.tenant_id", p.tenantId);
  checkQuotas(v, "project.quotas", p.quotas);
  v.check();
}
