import type { DescMethod } from "@bufbuild/protobuf";
import { inArray } from "drizzle-orm";
import { Visibility } from "../../../gen/metal/api/v1/common_pb.js";
import { UserService } from "../../../gen/metal/api/v1/user_pb.js";
import { auditEntries } from "../../../server/db/schema/index.js";
import { OUTCOME_OK } from "../../../server/domain/audit.js";
import { outcomeOf } from "../../../server/usecases/audit/entries.js";
import { scaled } from "../../helpers/timeouts.js";
import type { Outcome } from "./call.js";
import { declaredPermission, methodName } from "./methods.js";
import type { Role } from "./roles.js";
import type { MatrixWorld } from "./world.js";

/** One call of the matrix as the audit check needs it. */
export interface AuditedCase {
  key: string;
  method: DescMethod;
  role: Role;
  requestId: string;
  got: Outcome;
}

interface Entry {
  method: string;
  subject: string;
  outcome: string;
}

/** Names that read: a verb of reading first, or ending in Get or List (InviteGet). */
const READS = /^(Get|List|Find|Watch|Events|Issues|Commands|Try|Latest|Capacity|Suggest|Usage|Check|Match|Config)|(Get|List)$/;
/** Keystrokes of a console session, whose opening (Attach) is recorded. */
const EXEMPT = new Set(["metal.api.v1.ConsoleService.Input"]);

/**
 * The matrix's own reading of "every mutating call and every console
 * session" (issue 19), written from the issue, not from the server's rule: a
 * unary method of the API packages whose name does not read, or a browser
 * console session (Attach). Public methods have no caller to record, the edge
 * (metal.infra) and the replicas' internal calls are machine traffic.
 */
export function mutates(method: DescMethod): boolean {
  const name = methodName(method);
  if (name === "metal.api.v1.ConsoleService.Attach") return true;
  if (method.methodKind !== "unary" || EXEMPT.has(name) || !/^(metal\.api|metal\.admin|masterdata)\.v1\./.test(name)) return false;
  return declaredPermission(method)?.visibility !== Visibility.PUBLIC && !READS.test(method.name);
}

/**
 * Issue 19: "audit entries asserted for every mutating method in the
 * permission test". Each case of a mutating method (`mutates`)
 * whose caller the server verified has exactly one entry under its request
 * id: the method, the caller's subject, and the outcome the caller saw ("ok"
 * or the refusal's code). Callers without a verified token (none, garbage)
 * and machine credentials leave none, and no call of a method that is not
 * audited leaves one. Returns the differences, one line each.
 */
export async function auditDifferences(world: MatrixWorld, cases: readonly AuditedCase[]): Promise<string[]> {
  const subjects = await subjectsOf(world, cases);
  const expected = new Map<string, Entry | undefined>();
  for (const c of cases) {
    const verified = c.role.caller.kind !== "none" && c.role.caller.kind !== "garbage" && c.role.caller.kind !== "machine";
    expected.set(
      c.requestId,
      mutates(c.method) && verified
        ? { method: `/${c.method.parent.typeName}/${c.method.name}`, subject: subjects.get(c.role.name)!, outcome: c.got.code === "ok" ? OUTCOME_OK : outcomeOf(c.got.code) }
        : undefined,
    );
  }
  // A console session's entry is written as the stream opens, which may be just after the client saw its first message.
  const deadline = Date.now() + scaled(10_000);
  for (;;) {
    const found = await entriesOf(world, [...expected.keys()]);
    const differences = cases.flatMap((c) => differenceOf(c, expected.get(c.requestId), found.get(c.requestId) ?? []));
    if (differences.length === 0 || Date.now() > deadline || !differences.some((d) => d.includes("no entry"))) return differences;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function differenceOf(c: AuditedCase, want: Entry | undefined, got: Entry[]): string[] {
  const show = (e: Entry) => `${e.method} by ${e.subject}: ${e.outcome}`;
  if (!want) return got.length === 0 ? [] : [`${c.key}: expected no audit entry, found ${got.map(show).join("; ")}`];
  if (got.length === 0) return [`${c.key}: no entry, expected ${show(want)}`];
  if (got.length > 1) return [`${c.key}: ${got.length} entries, expected one (${show(want)})`];
  const e = got[0]!;
  return e.method === want.method && e.subject === want.subject && e.outcome === want.outcome ? [] : [`${c.key}: entry ${show(e)}, expected ${show(want)}`];
}

async function entriesOf(world: MatrixWorld, requestIds: string[]): Promise<Map<string, Entry[]>> {
  const rows = await world.server.app.db
    .select({ requestId: auditEntries.requestId, method: auditEntries.method, subject: auditEntries.subject, outcome: auditEntries.outcome })
    .from(auditEntries)
    .where(inArray(auditEntries.requestId, requestIds));
  const byId = new Map<string, Entry[]>();
  for (const r of rows) byId.set(r.requestId, [...(byId.get(r.requestId) ?? []), r]);
  return byId;
}

/** The subject the server sees behind each verified role's token (UserService.Get, open to any valid token). */
async function subjectsOf(world: MatrixWorld, cases: readonly AuditedCase[]): Promise<Map<string, string>> {
  const roles = new Map(cases.map((c) => [c.role.name, c.role]));
  const subjects = new Map<string, string>();
  for (const role of roles.values()) {
    const kind = role.caller.kind;
    if (kind === "none" || kind === "garbage" || kind === "machine") continue;
    const { user } = await world.server.client(UserService, world.tokens.get(role.name)).get({});
    subjects.set(role.name, user!.subject);
  }
  return subjects;
}
