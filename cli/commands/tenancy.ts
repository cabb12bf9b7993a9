import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Args, type Command, Flags } from "@oclif/core";
import { type Project as MdProject, ProjectSchema as MdProjectSchema } from "../../gen/masterdata/v1/project_pb.js";
import { type Tenant as MdTenant, TenantSchema as MdTenantSchema } from "../../gen/masterdata/v1/tenant_pb.js";
import { ProjectRoleSchema, TenantRoleSchema } from "../../gen/metal/api/v1/common_pb.js";
import {
  type Project,
  type ProjectInvite,
  ProjectInviteSchema,
  type ProjectMember,
  ProjectMemberSchema,
  ProjectService,
  ProjectServiceInviteAcceptResponseSchema,
  ProjectServiceInviteResponseSchema,
} from "../../gen/metal/api/v1/project_pb.js";
import {
  type Quotas,
  type Tenant,
  type TenantInvite,
  TenantInviteSchema,
  type TenantMember,
  TenantMemberSchema,
  TenantService,
  TenantServiceInviteAcceptResponseSchema,
  TenantServiceInviteResponseSchema,
} from "../../gen/metal/api/v1/tenant_pb.js";
import { aliasesOf, MetalCommand } from "../base.js";
import { parseDuration } from "../duration.js";
import { type Column, enumChoices, enumLabel, enumParse, isoTime, UsageError } from "../output.js";

/**
 * Tenant and project self-service (docs/tenancy.md): invitations, members,
 * leaving, and a tenant owner's project create. The operator's masterdata
 * commands (tenant/project list, describe, create) fall back to these
 * services when the token may not use masterdata (see selfServiceFallback).
 */

const tenantRole = (r: number) => enumLabel(TenantRoleSchema, r).toLowerCase();
const projectRole = (r: number) => enumLabel(ProjectRoleSchema, r).toLowerCase();

const roleFlag = (schema: typeof TenantRoleSchema | typeof ProjectRoleSchema, required = false) =>
  Flags.string({ description: `the role: ${enumChoices(schema).join(", ")}`, required, ...(required ? {} : { default: "viewer" }) });

const expiresFlag = Flags.string({ description: "how long the invitation is valid (default 7d, at most 30d), e.g. 1h, 2d" });
const expiresIn = (value: string | undefined) => {
  if (value === undefined) return undefined;
  const ms = parseDuration("expires-in", value);
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
};

const tenantInviteColumns: Column<TenantInvite>[] = [
  { header: "ID", value: (i) => i.id },
  { header: "Tenant", value: (i) => i.tenant },
  { header: "Name", value: (i) => i.tenantName },
  { header: "Role", value: (i) => tenantRole(i.role) },
  { header: "Expires", value: (i) => isoTime(i.expiresAt) },
  { header: "Created By", value: (i) => i.createdBy, wide: true },
  { header: "Created", value: (i) => isoTime(i.createdAt), wide: true },
];
const projectInviteColumns: Column<ProjectInvite>[] = [
  { header: "ID", value: (i) => i.id },
  { header: "Project", value: (i) => i.project },
  { header: "Name", value: (i) => i.projectName },
  { header: "Tenant", value: (i) => i.tenant },
  { header: "Role", value: (i) => projectRole(i.role) },
  { header: "Expires", value: (i) => isoTime(i.expiresAt) },
  { header: "Created By", value: (i) => i.createdBy, wide: true },
];
const tenantMemberColumns: Column<TenantMember>[] = [
  { header: "Member", value: (m) => m.id },
  { header: "Role", value: (m) => tenantRole(m.role) },
  { header: "Since", value: (m) => isoTime(m.createdAt) },
];
const projectMemberColumns: Column<ProjectMember>[] = [
  { header: "Member", value: (m) => m.id },
  { header: "Role", value: (m) => projectRole(m.role) },
  { header: "Via", value: (m) => (m.inherited ? "tenant" : "project") },
  { header: "Since", value: (m) => isoTime(m.createdAt), wide: true },
];

/** Invitations print their secret first: it is shown this once. */
const secretText = (secret: string, what: string) => `secret: ${secret}\n(shown only now: hand it to the invitee, who runs \`metalctl ${what} invite-accept <secret>\`)\n`;

const NEW_TOKEN_HINT = "the role is yours from your next sign-in (metalctl login) or a token issued from now on";

// ---- tenant ----

class TenantInvite_ extends MetalCommand<typeof TenantInvite_> {
  static override summary = "invite someone into a tenant (owners); prints the invitation's secret once";
  static override hiddenAliases = aliasesOf("tenant:invite", ["tenants"]);
  static override args = { tenant: Args.string({ required: true }) };
  static override flags = { role: roleFlag(TenantRoleSchema), "expires-in": expiresFlag };
  async run() {
    const r = await this.client(TenantService).invite({ tenant: this.args.tenant, role: enumParse(TenantRoleSchema, this.flags.role!), expiresIn: expiresIn(this.flags["expires-in"]) });
    const format = this.format("table");
    if (format === "json" || format === "yaml") return this.printOne(TenantServiceInviteResponseSchema, r);
    this.out(secretText(r.secret, "tenant"));
    this.printOne(TenantInviteSchema, r.invite!, tenantInviteColumns);
  }
}

class TenantInviteGet extends MetalCommand<typeof TenantInviteGet> {
  static override summary = "show what an invitation's secret would let you join";
  static override hiddenAliases = aliasesOf("tenant:invite-get", ["tenants"]);
  static override args = { secret: Args.string({ required: true }) };
  async run() {
    this.printOne(TenantInviteSchema, (await this.client(TenantService).inviteGet({ secret: this.args.secret })).invite!, tenantInviteColumns);
  }
}

class TenantInviteAccept extends MetalCommand<typeof TenantInviteAccept> {
  static override summary = "accept an invitation into a tenant: you become a member";
  static override hiddenAliases = aliasesOf("tenant:invite-accept", ["tenants"]);
  static override args = { secret: Args.string({ required: true }) };
  async run() {
    const r = await this.client(TenantService).inviteAccept({ secret: this.args.secret });
    this.printOne(TenantServiceInviteAcceptResponseSchema, r, [
      { header: "Tenant", value: (x) => x.tenant },
      { header: "Name", value: (x) => x.tenantName },
      { header: "Role", value: (x) => tenantRole(x.role) },
    ]);
    this.err(`joined tenant ${r.tenant} as ${tenantRole(r.role)}: ${NEW_TOKEN_HINT}\n`);
  }
}

class TenantInvites extends MetalCommand<typeof TenantInvites> {
  static override summary = "list a tenant's pending invitations (owners; never their secrets)";
  static override hiddenAliases = aliasesOf("tenant:invites", ["tenants"]);
  static override args = { tenant: Args.string({ required: true }) };
  async run() {
    this.printList(TenantInviteSchema, (await this.client(TenantService).invitesList({ tenant: this.args.tenant })).invites, tenantInviteColumns);
  }
}

class TenantInviteDelete extends MetalCommand<typeof TenantInviteDelete> {
  static override summary = "withdraw a pending invitation of a tenant (owners)";
  static override hiddenAliases = aliasesOf("tenant:invite-delete", ["tenants"]);
  static override args = { tenant: Args.string({ required: true }), id: Args.string({ required: true, description: "the invitation's id (metalctl tenant invites)" }) };
  async run() {
    this.printOne(TenantInviteSchema, (await this.client(TenantService).inviteDelete({ tenant: this.args.tenant, id: this.args.id })).invite!, tenantInviteColumns);
  }
}

class TenantMembers extends MetalCommand<typeof TenantMembers> {
  static override summary = "list a tenant's members and their roles";
  static override hiddenAliases = aliasesOf("tenant:members", ["tenants"]);
  static override args = { tenant: Args.string({ required: true }) };
  async run() {
    this.printList(TenantMemberSchema, (await this.client(TenantService).get({ tenant: this.args.tenant })).members, tenantMemberColumns);
  }
}

class TenantMemberUpdate extends MetalCommand<typeof TenantMemberUpdate> {
  static override summary = "change a member's role in a tenant (owners; the last owner stays an owner)";
  static override hiddenAliases = aliasesOf("tenant:member-update", ["tenants"]);
  static override args = { tenant: Args.string({ required: true }), member: Args.string({ required: true }) };
  static override flags = { role: roleFlag(TenantRoleSchema, true) };
  async run() {
    const r = await this.client(TenantService).memberUpdate({ tenant: this.args.tenant, member: this.args.member, role: enumParse(TenantRoleSchema, this.flags.role!) });
    this.printOne(TenantMemberSchema, r.member!, tenantMemberColumns);
  }
}

class TenantMemberRemove extends MetalCommand<typeof TenantMemberRemove> {
  static override summary = "remove a member from a tenant (owners; not the last owner); their tokens lose the tenant at once";
  static override hiddenAliases = aliasesOf("tenant:member-remove", ["tenants"]);
  static override args = { tenant: Args.string({ required: true }), member: Args.string({ required: true }) };
  async run() {
    const r = await this.client(TenantService).memberRemove({ tenant: this.args.tenant, member: this.args.member });
    this.printOne(TenantMemberSchema, r.member!, tenantMemberColumns);
  }
}

class TenantLeave extends MetalCommand<typeof TenantLeave> {
  static override summary = "leave a tenant (not as its last owner); your tokens lose the tenant at once";
  static override hiddenAliases = aliasesOf("tenant:leave", ["tenants"]);
  static override args = { tenant: Args.string({ required: true }) };
  async run() {
    const r = await this.client(TenantService).leave({ tenant: this.args.tenant });
    this.printOne(TenantMemberSchema, r.member!, tenantMemberColumns);
  }
}

// ---- project ----

class ProjectInvite_ extends MetalCommand<typeof ProjectInvite_> {
  static override summary = "invite someone into a project (owners); prints the invitation's secret once";
  static override hiddenAliases = aliasesOf("project:invite", ["projects"]);
  static override flags = { project: Flags.string({ description: "project (default: the context's)" }), role: roleFlag(ProjectRoleSchema), "expires-in": expiresFlag };
  async run() {
    const project = this.requireProject(this.flags.project);
    const r = await this.client(ProjectService).invite({ project, role: enumParse(ProjectRoleSchema, this.flags.role!), expiresIn: expiresIn(this.flags["expires-in"]) });
    const format = this.format("table");
    if (format === "json" || format === "yaml") return this.printOne(ProjectServiceInviteResponseSchema, r);
    this.out(secretText(r.secret, "project"));
    this.printOne(ProjectInviteSchema, r.invite!, projectInviteColumns);
  }
}

class ProjectInviteGet extends MetalCommand<typeof ProjectInviteGet> {
  static override summary = "show what an invitation's secret would let you join";
  static override hiddenAliases = aliasesOf("project:invite-get", ["projects"]);
  static override args = { secret: Args.string({ required: true }) };
  async run() {
    this.printOne(ProjectInviteSchema, (await this.client(ProjectService).inviteGet({ secret: this.args.secret })).invite!, projectInviteColumns);
  }
}

class ProjectInviteAccept extends MetalCommand<typeof ProjectInviteAccept> {
  static override summary = "accept an invitation into a project: you become a member";
  static override hiddenAliases = aliasesOf("project:invite-accept", ["projects"]);
  static override args = { secret: Args.string({ required: true }) };
  async run() {
    const r = await this.client(ProjectService).inviteAccept({ secret: this.args.secret });
    this.printOne(ProjectServiceInviteAcceptResponseSchema, r, [
      { header: "Project", value: (x) => x.project },
      { header: "Name", value: (x) => x.projectName },
      { header: "Role", value: (x) => projectRole(x.role) },
    ]);
    this.err(`joined project ${r.project} as ${projectRole(r.role)}: ${NEW_TOKEN_HINT}\n`);
  }
}

const projectFlag = { project: Flags.string({ description: "project (default: the context's)" }) };

class ProjectInvites extends MetalCommand<typeof ProjectInvites> {
  static override summary = "list a project's pending invitations (owners; never their secrets)";
  static override hiddenAliases = aliasesOf("project:invites", ["projects"]);
  static override flags = projectFlag;
  async run() {
    const project = this.requireProject(this.flags.project);
    this.printList(ProjectInviteSchema, (await this.client(ProjectService).invitesList({ project })).invites, projectInviteColumns);
  }
}

class ProjectInviteDelete extends MetalCommand<typeof ProjectInviteDelete> {
  static override summary = "withdraw a pending invitation of a project (owners)";
  static override hiddenAliases = aliasesOf("project:invite-delete", ["projects"]);
  static override args = { id: Args.string({ required: true, description: "the invitation's id (metalctl project invites)" }) };
  static override flags = projectFlag;
  async run() {
    const project = this.requireProject(this.flags.project);
    this.printOne(ProjectInviteSchema, (await this.client(ProjectService).inviteDelete({ project, id: this.args.id })).invite!, projectInviteColumns);
  }
}

class ProjectMembers extends MetalCommand<typeof ProjectMembers> {
  static override summary = "list a project's members: direct ones and those of its tenant";
  static override hiddenAliases = aliasesOf("project:members", ["projects"]);
  static override flags = projectFlag;
  async run() {
    const project = this.requireProject(this.flags.project);
    this.printList(ProjectMemberSchema, (await this.client(ProjectService).get({ project })).members, projectMemberColumns);
  }
}

class ProjectMemberUpdate extends MetalCommand<typeof ProjectMemberUpdate> {
  static override summary = "change a direct member's role in a project (owners)";
  static override hiddenAliases = aliasesOf("project:member-update", ["projects"]);
  static override args = { member: Args.string({ required: true }) };
  static override flags = { ...projectFlag, role: roleFlag(ProjectRoleSchema, true) };
  async run() {
    const project = this.requireProject(this.flags.project);
    const r = await this.client(ProjectService).memberUpdate({ project, member: this.args.member, role: enumParse(ProjectRoleSchema, this.flags.role!) });
    this.printOne(ProjectMemberSchema, r.member!, projectMemberColumns);
  }
}

class ProjectMemberRemove extends MetalCommand<typeof ProjectMemberRemove> {
  static override summary = "remove a direct member from a project (owners); their tokens lose the project at once";
  static override hiddenAliases = aliasesOf("project:member-remove", ["projects"]);
  static override args = { member: Args.string({ required: true }) };
  static override flags = projectFlag;
  async run() {
    const project = this.requireProject(this.flags.project);
    this.printOne(ProjectMemberSchema, (await this.client(ProjectService).memberRemove({ project, member: this.args.member })).member!, projectMemberColumns);
  }
}

class ProjectLeave extends MetalCommand<typeof ProjectLeave> {
  static override summary = "leave a project you are a direct member of; your tokens lose the project at once";
  static override hiddenAliases = aliasesOf("project:leave", ["projects"]);
  static override flags = projectFlag;
  async run() {
    const project = this.requireProject(this.flags.project);
    this.printOne(ProjectMemberSchema, (await this.client(ProjectService).leave({ project })).member!, projectMemberColumns);
  }
}

export const TENANCY_COMMANDS: Record<string, typeof Command> = {
  "tenant:invite": TenantInvite_,
  "tenant:invite-get": TenantInviteGet,
  "tenant:invite-accept": TenantInviteAccept,
  "tenant:invites": TenantInvites,
  "tenant:invite-delete": TenantInviteDelete,
  "tenant:members": TenantMembers,
  "tenant:member-update": TenantMemberUpdate,
  "tenant:member-remove": TenantMemberRemove,
  "tenant:leave": TenantLeave,
  "project:invite": ProjectInvite_,
  "project:invite-get": ProjectInviteGet,
  "project:invite-accept": ProjectInviteAccept,
  "project:invites": ProjectInvites,
  "project:invite-delete": ProjectInviteDelete,
  "project:members": ProjectMembers,
  "project:member-update": ProjectMemberUpdate,
  "project:member-remove": ProjectMemberRemove,
  "project:leave": ProjectLeave,
};

// ---- the operator commands' fallback for members ----

type Caller = MetalCommand<typeof Command>;

/** The operator's (masterdata) call; when the token may not use masterdata, the self-service one. */
export async function selfServiceFallback<T>(operator: () => Promise<T>, member: () => Promise<T>): Promise<T> {
  try {
    return await operator();
  } catch (err) {
    if (ConnectError.from(err).code !== Code.PermissionDenied) throw err;
    return member();
  }
}

const quotaSet = (q: Quotas | undefined) => Object.fromEntries((["machine", "ip", "network", "project"] as const).map((k) => [k, q?.[k] === undefined ? {} : { max: q[k] }]));

/** A self-service tenant in the shape the operator's columns and documents use. */
export const asMdTenant = (t: Tenant): MdTenant => create(MdTenantSchema, { meta: { id: t.id, version: t.meta?.version ?? 0n }, name: t.name, description: t.description, quotas: quotaSet(t.quotas) });
export const asMdProject = (p: Project): MdProject =>
  create(MdProjectSchema, { meta: { id: p.id, version: p.meta?.version ?? 0n }, name: p.name, description: p.description, tenantId: p.tenant, quotas: quotaSet(p.quotas) });

export const memberTenant = async (c: Caller, id: string) => asMdTenant((await c.client(TenantService).get({ tenant: id })).tenant!);
export const memberTenants = async (c: Caller) => (await c.client(TenantService).list({})).tenants.map(asMdTenant);
export const memberProject = async (c: Caller, id: string) => asMdProject((await c.client(ProjectService).get({ project: id })).project!);
export const memberProjects = async (c: Caller, tenant?: string) => (await c.client(ProjectService).list({ tenant })).projects.map(asMdProject);

/** `project create` as a tenant owner: the document's tenant, id, name, description and machine/ip/network quotas. */
export async function memberProjectCreate(c: Caller, doc: JsonObject): Promise<MdProject> {
  const meta = (doc.meta as JsonObject | undefined) ?? {};
  const q = doc.quotas as Record<string, { max?: number }> | undefined;
  const quotas = q ? Object.fromEntries(["machine", "ip", "network"].filter((k) => q[k]?.max !== undefined).map((k) => [k, q[k]!.max])) : undefined;
  if (typeof doc.tenantId !== "string") throw new UsageError("--tenant is required");
  const r = await c.client(ProjectService).create({
    tenant: doc.tenantId,
    id: typeof meta.id === "string" ? meta.id : "",
    name: typeof doc.name === "string" ? doc.name : "",
    description: typeof doc.description === "string" ? doc.description : "",
    quotas,
  });
  return asMdProject(r.project!);
}
