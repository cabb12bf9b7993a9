import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { create, type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { AdminRole, type Permission, PermissionSchema, permission, Visibility } from "../../../gen/metal/api/v1/common_pb.js";

const GEN = join(import.meta.dirname, "../../../gen");

/** Every `_pb.ts` below gen/, so a new package is enumerated without touching this file. */
function generatedFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? generatedFiles(join(dir, e.name)) : e.name.endsWith("_pb.ts") ? [join(dir, e.name)] : []));
}

/** Every service generated from proto/, in a stable order. */
export async function allServices(): Promise<DescService[]> {
  const out: DescService[] = [];
  for (const file of generatedFiles(GEN).sort()) {
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    for (const v of Object.values(mod)) if ((v as DescService)?.kind === "service") out.push(v as DescService);
  }
  return out.sort((a, b) => a.typeName.localeCompare(b.typeName));
}

export const methodName = (m: DescMethod) => `${m.parent.typeName}.${m.name}`;

/**
 * Services whose contracts are not ours to annotate, with the rule their
 * methods have instead, written down here by hand (the proto cannot say it):
 * the gRPC health protocol is public; masterdata (shared with other control
 * planes) is for operators, its reads for viewers. Any other method without a
 * permission option fails the matrix.
 */
const UNANNOTATED: Record<string, { reason: string; rule: (m: DescMethod) => Permission }> = {
  "grpc.health.v1.Health": { reason: "the standard gRPC health protocol: public", rule: () => create(PermissionSchema, { visibility: Visibility.PUBLIC }) },
  ...Object.fromEntries(
    ["ProjectService", "ProjectMemberService", "TenantService", "TenantMemberService", "InvitationService", "MembershipService"].map((s) => [
      `masterdata.v1.${s}`,
      {
        reason: "masterdata is shared with other control planes: operators only, reads for viewers",
        rule: (m: DescMethod) => create(PermissionSchema, { adminRole: ["Get", "Find", "GetHistory"].includes(m.name) ? AdminRole.VIEWER : AdminRole.ADMIN }),
      },
    ]),
  ),
};

/** The declared permission of a method, or undefined for a method that has none and no rule above. */
export function declaredPermission(m: DescMethod): Permission | undefined {
  if (hasOption(m, permission)) return getOption(m, permission);
  return UNANNOTATED[m.parent.typeName]?.rule(m);
}
