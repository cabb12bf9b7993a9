import type { ConnectRouter } from "@connectrpc/connect";
import { InvitationService } from "../../gen/masterdata/v1/invitation_pb.js";
import { MembershipService } from "../../gen/masterdata/v1/membership_pb.js";
import { ProjectMemberService } from "../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService } from "../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService } from "../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService } from "../../gen/masterdata/v1/tenant_pb.js";
import type { DbHandle } from "../db/handle.js";
import { createInvitationService } from "./services/invitation-service.js";
import { createMembershipService } from "./services/membership-service.js";
import { createProjectMemberService } from "./services/project-member-service.js";
import { createProjectService } from "./services/project-service.js";
import { createTenantMemberService } from "./services/tenant-member-service.js";
import { createTenantService } from "./services/tenant-service.js";

export interface MasterdataDeps {
  db: DbHandle;
  /** What still uses a project outside masterdata (see ProjectServiceDeps); a project in use is not deleted. */
  projectUsage: (projectId: string) => Promise<string[]>;
  /** Told after a project is deleted. */
  projectDeleted?: (projectId: string) => Promise<void>;
}

/**
 * The masterdata services. metal-api mounts them on its own router (for
 * operators) and also calls them in-process through a router transport.
 */
export function createMasterdataRoutes(deps: MasterdataDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(TenantService, createTenantService(deps));
    router.service(ProjectService, createProjectService(deps));
    router.service(TenantMemberService, createTenantMemberService(deps));
    router.service(ProjectMemberService, createProjectMemberService(deps));
    router.service(InvitationService, createInvitationService(deps));
    router.service(MembershipService, createMembershipService(deps));
  };
}
