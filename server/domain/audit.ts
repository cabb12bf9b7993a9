import { type Permission, Visibility } from "../../gen/metal/api/v1/common_pb.js";

/**
 * Which calls the audit trail records, and what of them (docs/audit.md).
 *
 * The rule: a unary call of the API packages (metal.api, metal.admin,
 * masterdata) that is not public and whose name does not read (Get, List,
 * Watch, ... or a name ending in Get or List, such as InviteGet). Going by the
 * name, not by the role a method needs: a member's own Leave needs only a
 * viewer's role and still changes something. So a new method is recorded or
 * not by its name, without a list to keep up to date.
 *
 * Not recorded: the public methods (no verified caller; sign-in records its
 * own entry), the edge daemons (metal.infra: switch syncs, events, BMC
 * reports: machine-driven and far more frequent than changes people make; the
 * change log and the machine's event log keep them), metal-hammer's calls
 * (machine credentials, same), the replicas' internal calls, streams (Watch
 * reads; console sessions are recorded where they open) and
 * ConsoleService.Input (keystrokes of a session already recorded).
 */
const AUDITED_PACKAGES = /^(metal\.api\.v1|metal\.admin\.v1|masterdata\.v1)\./;
const NOT_AUDITED = new Set(["metal.api.v1.ConsoleService/Input"]);
const READS_BY_NAME = /^(Get|List|Find|Watch|Events|Issues|Commands|Try|Latest|Capacity|Suggest|Usage|Check|Info|Whoami|Version|Match|Config)|(Get|List)$/;

export interface MethodDescription {
  /** Fully qualified service name, e.g. "metal.api.v1.IPService". */
  service: string;
  name: string;
  unary: boolean;
  permission: Permission;
}

export function isAudited(m: MethodDescription): boolean {
  if (!m.unary || !AUDITED_PACKAGES.test(m.service) || NOT_AUDITED.has(`${m.service}/${m.name}`)) return false;
  const p = m.permission;
  if (p.replica || p.infra || p.visibility === Visibility.PUBLIC) return false;
  return !READS_BY_NAME.test(m.name);
}

/** Field names (proto JSON, camelCase) whose string values name a target. */
const TARGET_FIELDS = /^(id|uuid|project|tenant|partition|network|ip|image|size|machine|switch|[a-z][A-Za-z]*Id)$/;
const MAX_TARGETS = 16;

/**
 * The ids a request names: its top-level `id`, `*Id` and resource-named
 * string fields, and the strings of top-level `*Ids` lists. Generic on
 * purpose: every request of this API names its targets this way.
 */
export function targetIdsOf(request: Record<string, unknown>): string[] {
  const ids = new Set<string>();
  for (const [key, value] of Object.entries(request)) {
    if (typeof value === "string" && value !== "" && TARGET_FIELDS.test(key)) ids.add(value);
    else if (Array.isArray(value) && /Ids$/.test(key)) for (const v of value) if (typeof v === "string" && v !== "") ids.add(v);
  }
  return [...ids].slice(0, MAX_TARGETS);
}

/**
 * The targets with the ids of what the call created put first (a created id
 * is what the entry is most about; the cap cuts request ids before it).
 */
export function withCreatedTargets(targetIds: readonly string[], created: readonly string[]): string[] {
  return [...new Set([...created, ...targetIds])].slice(0, MAX_TARGETS);
}

/** The project a request concerns (tenants see the entries of their projects), undefined outside any. */
export function projectOf(request: Record<string, unknown>): string | undefined {
  return typeof request.project === "string" && request.project !== "" ? request.project : undefined;
}

/** The outcome of a successful call; failures record their Connect code's name. */
export const OUTCOME_OK = "ok";
