import type { Tenant } from "../../../gen/masterdata/v1/tenant_pb.js";
import { validator } from "../../validate/validator.js";
import { checkMeta, checkQuotas } from "./common.js";

/** Create and Update carry a whole tenant; update also its id and the version read. */
export function validateTenant(t: Tenant | undefined, opts: { create: boolean }): asserts t is Tenant {
  const v = validator();
  if (!t) return v.add("tenant", "is required").check();
  checkMeta(v, "tenant.meta", t.meta, { ...opts, kind: "Tenant" });
  v.requiredText("tenant.name", t.name, 128).text("tenant.description", t.description, 1024);
  checkQuotas(v, "tenant.default_quotas", t.defaultQuotas);
  checkQuotas(v, "tenant.quotas", t.quotas);
  v.check();
}
