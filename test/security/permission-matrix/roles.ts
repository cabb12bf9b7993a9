import { AdminRole, type ProjectRole, type TenantRole } from "../../../gen/metal/api/v1/common_pb.js";

/**
 * The callers of the matrix. "This" target is tenant t, its project pa,
 * partition p1 and machine M; "another" is tenant t2 with project pz,
 * partition p2 and machine M2. Every request aims at "this" target.
 */
export type Caller =
  | { kind: "none" }
  | { kind: "garbage" }
  | { kind: "operator"; level: AdminRole }
  | { kind: "tenant"; tenant: string; level: TenantRole }
  | { kind: "project"; project: string; level: ProjectRole }
  | { kind: "infra"; partition: string }
  | { kind: "machine"; machine: "M" | "M2" };

export interface Role {
  name: string;
  caller: Caller;
}

export const THIS = { tenant: "t", project: "pa", partition: "p1" } as const;
export const OTHER = { tenant: "t2", project: "pz", partition: "p2" } as const;

const levels = [
  ["owner", 3],
  ["editor", 2],
  ["viewer", 1],
] as const;

export const ROLES: readonly Role[] = [
  { name: "none", caller: { kind: "none" } },
  { name: "garbage token", caller: { kind: "garbage" } },
  { name: "operator admin", caller: { kind: "operator", level: AdminRole.ADMIN } },
  { name: "operator viewer", caller: { kind: "operator", level: AdminRole.VIEWER } },
  ...[THIS.tenant, OTHER.tenant].flatMap((tenant) => levels.map(([n, level]): Role => ({ name: `tenant ${n} of ${tenant}`, caller: { kind: "tenant", tenant, level: level as TenantRole } }))),
  ...[THIS.project, OTHER.project].flatMap((project) => levels.map(([n, level]): Role => ({ name: `project ${n} of ${project}`, caller: { kind: "project", project, level: level as ProjectRole } }))),
  { name: `infra of ${THIS.partition}`, caller: { kind: "infra", partition: THIS.partition } },
  { name: `infra of ${OTHER.partition}`, caller: { kind: "infra", partition: OTHER.partition } },
  { name: "machine M (this)", caller: { kind: "machine", machine: "M" } },
  { name: "machine M2 (another)", caller: { kind: "machine", machine: "M2" } },
];
