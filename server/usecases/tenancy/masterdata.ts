import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { InvitationService } from "../../../gen/masterdata/v1/invitation_pb.js";
import { MembershipService } from "../../../gen/masterdata/v1/membership_pb.js";
import { ProjectMemberService } from "../../../gen/masterdata/v1/project_member_pb.js";
import { ProjectService } from "../../../gen/masterdata/v1/project_pb.js";
import { TenantMemberService } from "../../../gen/masterdata/v1/tenant_member_pb.js";
import { TenantService } from "../../../gen/masterdata/v1/tenant_pb.js";
import type { TokenAuthority } from "../../auth/token-authority.js";
import type { DbHandle } from "../../db/handle.js";

/** The masterdata services self-service uses, reached through their generated clients only. */
export interface Masterdata {
  tenants: Client<typeof TenantService>;
  projects: Client<typeof ProjectService>;
  tenantMembers: Client<typeof TenantMemberService>;
  projectMembers: Client<typeof ProjectMemberService>;
  invitations: Client<typeof InvitationService>;
  memberships: Client<typeof MembershipService>;
}

export function masterdataClients(transport: Transport): Masterdata {
  return {
    tenants: plainErrors(createClient(TenantService, transport)),
    projects: plainErrors(createClient(ProjectService, transport)),
    tenantMembers: plainErrors(createClient(TenantMemberService, transport)),
    projectMembers: plainErrors(createClient(ProjectMemberService, transport)),
    invitations: plainErrors(createClient(InvitationService, transport)),
    memberships: plainErrors(createClient(MembershipService, transport)),
  };
}

/**
 * masterdata's errors reach the caller with their code and message only: the
 * inner call's response metadata (content type and the like) must not become
 * headers or trailers of the outer response (a gRPC client sees a broken
 * HTTP/2 stream otherwise).
 */
function plainErrors<C extends object>(client: C): C {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(client)) {
    wrapped[name] = (...args: unknown[]) =>
      (fn as (...a: unknown[]) => Promise<unknown>)(...args).catch((err: unknown) => {
        const ce = ConnectError.from(err);
        throw new ConnectError(ce.rawMessage, ce.code);
      });
  }
  return wrapped as C;
}

/** What the tenancy use cases need: masterdata, and the tokens whose grants follow the memberships. */
export interface TenancyDeps {
  md: Masterdata;
  db: DbHandle;
  authority: Pick<TokenAuthority, "capSubjectGrant">;
}

/** Rows per page of a masterdata Find (its maximum). */
export const LIST_LIMIT = 1000;

/** Masterdata's paging as a Find takes it. */
export type Paging = { limit: number; pageToken: string };

/**
 * Every item of a masterdata Find, page by page (`items` picks a page's
 * rows): lists shown and grants capped both see everything, not a first page.
 */
export async function everyPage<R extends { nextPageToken: string }, T>(find: (paging: Paging) => Promise<R>, items: (page: R) => T[]): Promise<T[]> {
  const all: T[] = [];
  let pageToken = "";
  do {
    const page = await find({ limit: LIST_LIMIT, pageToken });
    all.push(...items(page));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

/** The value of a masterdata call, or undefined when it answers NotFound. */
export async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (ConnectError.from(err).code === Code.NotFound) return undefined;
    throw err;
  }
}
