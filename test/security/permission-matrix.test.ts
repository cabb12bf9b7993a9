import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { startTestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";
import { type AuditedCase, auditDifferences, mutates } from "./permission-matrix/audit-check.js";
import { callMethod, type Outcome, outcomeName } from "./permission-matrix/call.js";
import { allServices, declaredPermission, methodName } from "./permission-matrix/methods.js";
import { type Expected, expectedDecision, type RequestTarget } from "./permission-matrix/oracle.js";
import { AUTHORIZATION_ONLY, requestFor, VALID } from "./permission-matrix/requests.js";
import { ROLES, type Role } from "./permission-matrix/roles.js";
import { buildWorld, type MatrixWorld } from "./permission-matrix/world.js";

/**
 * Issue 19: every method of every generated service, called by every role of
 * the matrix (see roles.ts) at "this" target, gets the decision its proto
 * permission option declares, computed here from the option's documented
 * meaning (oracle.ts): allowed calls succeed (or, for the methods listed in
 * AUTHORIZATION_ONLY, are at least not refused by authorization), every other
 * call is refused with Unauthenticated or PermissionDenied as documented.
 */

/**
 * Cases where the server differs from the declared permission today, each
 * reported as a defect. The matrix expects them to still differ, so a fix
 * fails here until its entry is removed. Key: "<method> × <role>".
 */
const KNOWN_DEFECTS: Record<string, string> = {};

/** Methods whose allowed calls change one shared target (its version): one role after another. */
const ONE_AT_A_TIME = new Set(["metal.api.v1.MachineService.Update"]);

/** How many methods are called at a time (each with all its roles, see runMethod). */
const PARALLEL_METHODS = 8;

let world: MatrixWorld;
let methods: DescMethod[];

beforeAll(async () => {
  const server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  world = await buildWorld(server);
  methods = (await allServices()).flatMap((s) => s.methods);
});

/** What a request names, read from the request message as the permission's comments define the fields. */
function targetOf(method: DescMethod, request: unknown): RequestTarget {
  const r = request as Record<string, unknown>;
  const has = (name: string) => method.input.fields.some((f) => f.name === name);
  const str = (name: string, local: string) => (has(name) ? ((r[local] as string | undefined) ?? "") : undefined);
  const events = r.events as { machineId?: string }[] | undefined;
  const machineIds = has("machine_id") ? [(r.machineId as string | undefined) ?? ""] : has("events") ? (events ?? []).map((e) => e.machineId ?? "") : undefined;
  return { project: str("project", "project"), tenant: str("tenant", "tenant"), partition: str("partition", "partition"), machineIds };
}

interface CaseResult extends AuditedCase {
  expected: Expected;
  got: Outcome;
  verdict: "succeeded" | "authorized" | "refused" | "mismatch";
}

function judge(method: DescMethod, expected: Expected, got: Outcome): CaseResult["verdict"] {
  const authRefusal = got.code === Code.Unauthenticated || got.code === Code.PermissionDenied;
  if (!expected.allow) return got.code !== "ok" && expected.codes.includes(got.code) ? "refused" : "mismatch";
  if (got.code === "ok") return "succeeded";
  return methodName(method) in AUTHORIZATION_ONLY && !authRefusal ? "authorized" : "mismatch";
}

let caseCounter = 0;

/** One call of the matrix: `request` sent by `role`, judged against what the permission declares for it. */
async function runCase(method: DescMethod, role: Role, request: unknown): Promise<CaseResult> {
  const token = world.tokens.get(role.name);
  const expected = expectedDecision(declaredPermission(method)!, role.caller, targetOf(method, request), world);
  const requestId = `matrix-case-${++caseCounter}`;
  const got = await callMethod(world.server.grpcClient(method.parent, token), method, request, requestId);
  return { key: `${methodName(method)} × ${role.name}`, method, role, requestId, expected, got, verdict: judge(method, expected, got) };
}

const setUpFailed = (method: DescMethod, role: Role, err: unknown): CaseResult => ({
  key: `${methodName(method)} × ${role.name}`,
  method,
  role,
  requestId: "",
  expected: { allow: true },
  got: { code: Code.Internal, message: `the case's request could not be made: ${String(err)}` },
  verdict: "mismatch",
});

/**
 * Every role's call of one method. A refusal changes nothing, so the refused
 * roles share one request (made as an operator admin would make it) and run
 * side by side; each allowed role gets a request of its own (a fresh target
 * where the call changes or removes it), side by side too unless the method
 * is in ONE_AT_A_TIME.
 */
async function runMethod(method: DescMethod): Promise<CaseResult[]> {
  const permission = declaredPermission(method)!;
  let shared: unknown;
  try {
    shared = await requestFor(method, world, world.server.adminToken);
  } catch (err) {
    return ROLES.map((role) => setUpFailed(method, role, err));
  }
  const allowed = (role: Role) => expectedDecision(permission, role.caller, targetOf(method, shared), world).allow;
  const results = await Promise.all(ROLES.filter((r) => !allowed(r)).map((role) => runCase(method, role, shared)));
  const own = async (role: Role) => {
    const made = await requestFor(method, world, world.tokens.get(role.name)).then(
      (request) => ({ request }),
      (err: unknown) => ({ err }),
    );
    return "err" in made ? setUpFailed(method, role, made.err) : await runCase(method, role, made.request);
  };
  if (ONE_AT_A_TIME.has(methodName(method))) {
    for (const role of ROLES.filter(allowed)) results.push(await own(role));
  } else {
    results.push(...(await Promise.all(ROLES.filter(allowed).map(own))));
  }
  return results;
}

async function runMatrix(): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const queue = [...methods];
  const worker = async () => {
    for (let m = queue.shift(); m; m = queue.shift()) results.push(...(await runMethod(m)));
  };
  await Promise.all(Array.from({ length: PARALLEL_METHODS }, worker));
  return results;
}

const describeExpected = (e: Expected) => (e.allow ? "allowed" : `refused with ${e.codes.map((c) => Code[c]).join(" or ")}`);

describe("the permission matrix", () => {
  it("finds every method's permission in its proto options (or in the short list of unannotated services)", () => {
    expect(methods.length).toBeGreaterThan(100);
    expect(methods.filter((m) => declaredPermission(m) === undefined).map(methodName)).toEqual([]);
  });

  it("has a valid request for every method, or lists it as authorization-only with a reason", () => {
    const names = methods.map(methodName);
    expect(names.filter((n) => !(n in VALID) && !(n in AUTHORIZATION_ONLY))).toEqual([]);
    expect(names.filter((n) => n in VALID && n in AUTHORIZATION_ONLY)).toEqual([]);
    // Entries for methods that no longer exist would hide nothing, but would mislead.
    expect([...Object.keys(VALID), ...Object.keys(AUTHORIZATION_ONLY)].filter((n) => !names.includes(n))).toEqual([]);
  });

  let results: CaseResult[] | undefined;

  it("answers every method × role as the permission declares", { timeout: scaled(180_000) }, async () => {
    const all = await runMatrix();
    results = all;
    const mismatches = all.filter((r) => r.verdict === "mismatch");
    const unexpected = mismatches.filter((r) => !(r.key in KNOWN_DEFECTS)).map((r) => `${r.key}: expected ${describeExpected(r.expected)}, got ${outcomeName(r.got)}`);
    const fixed = Object.keys(KNOWN_DEFECTS).filter((k) => !mismatches.some((r) => r.key === k));
    const count = (v: CaseResult["verdict"]) => all.filter((r) => r.verdict === v).length;
    console.info(
      `permission matrix: ${methods.length} methods × ${ROLES.length} roles = ${all.length} cases; ` +
        `allowed: ${count("succeeded")} succeeded, ${count("authorized")} passed authorization only; refused as declared: ${count("refused")}; ` +
        `known defects: ${mismatches.length - unexpected.length}`,
    );
    expect(all.length).toBe(methods.length * ROLES.length);
    expect(unexpected).toEqual([]);
    expect(fixed, "fixed: remove these from KNOWN_DEFECTS").toEqual([]);
  });

  it("records each call of a mutating method in the audit trail: method, caller, outcome", { timeout: scaled(60_000) }, async () => {
    if (!results) throw new Error("the matrix did not run");
    const made = results.filter((r) => r.requestId !== "");
    const audited = made.filter((r) => auditsMethodCase(r)).length;
    console.info(`audit trail: ${audited} calls of mutating methods checked for one entry each, ${made.length - audited} other calls for none`);
    expect(audited).toBeGreaterThan(500);
    expect(await auditDifferences(world, made)).toEqual([]);
  });
});

const auditsMethodCase = (r: CaseResult) => mutates(r.method) && !["none", "garbage", "machine"].includes(r.role.caller.kind);
