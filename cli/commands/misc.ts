import { Args, type Command, Flags } from "@oclif/core";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRoleSchema, ProjectRoleSchema, TenantRoleSchema } from "../../gen/metal/api/v1/common_pb.js";
import { HealthService, HealthServiceGetResponseSchema, HealthStatusSchema } from "../../gen/metal/api/v1/health_pb.js";
import { type Token, type TokenRoles, TokenSchema, TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { UserSchema, UserService } from "../../gen/metal/api/v1/user_pb.js";
import { VersionSchema, VersionService } from "../../gen/metal/api/v1/version_pb.js";
import { aliasesOf, allPages, apiUrl, DEFAULT_API_URL, MetalCommand } from "../base.js";
import { type CompletableCommand, completionScript } from "../completion.js";
import { parseDurationAtLeast } from "../duration.js";
import { type Column, enumLabel, enumParse, isoTime, jsonOf, renderTable, UsageError } from "../output.js";

// ---------------------------------------------------------------- contexts

type ContextRow = { current: boolean; name: string; url: string; project: string; token: boolean };

class ContextList extends MetalCommand<typeof ContextList> {
  static override summary = "list the contexts of the config file";
  static override hiddenAliases = ["context:ls", "ctx", "ctx:list", "ctx:ls", "context"];
  async run() {
    const config = this.readConfig();
    const rows: ContextRow[] = Object.entries(config.contexts).map(([name, c]) => ({ current: name === config.current, name, url: c.url ?? DEFAULT_API_URL, project: c.project ?? "", token: Boolean(c.token) }));
    this.printData({ current: config.current ?? null, contexts: rows.map(({ current: _c, ...r }) => r) }, () =>
      renderTable(
        rows,
        [
          { header: "", value: (r) => (r.current ? "*" : "") },
          { header: "Name", value: (r) => r.name },
          { header: "URL", value: (r) => r.url },
          { header: "Project", value: (r) => r.project },
          { header: "Token", value: (r) => (r.token ? "yes" : "") },
        ] satisfies Column<ContextRow>[],
        { wide: false, headers: !this.global["no-headers"] },
      ),
    );
  }
}

class ContextUse extends MetalCommand<typeof ContextUse> {
  static override summary = 'make a context the current one ("-" switches back to the previous)';
  static override hiddenAliases = ["ctx:use", "context:switch"];
  static override args = { name: Args.string({ required: true }) };
  async run() {
    const config = this.readConfig();
    const name = this.args.name === "-" ? config.previous : this.args.name;
    if (!name || !config.contexts[name]) throw new UsageError(`context "${this.args.name}" not found in ${this.configFile}`);
    if (config.current !== name) config.previous = config.current;
    config.current = name;
    this.writeConfig(config);
    this.out(`switched to context "${name}"\n`);
  }
}

class ContextAdd extends MetalCommand<typeof ContextAdd> {
  static override summary = "add or change a context (URL, token, default project)";
  static override hiddenAliases = ["ctx:add", "context:set"];
  static override args = { name: Args.string({ required: true }) };
  static override flags = {
    project: Flags.string({ description: "default project of tenant-scoped commands" }),
    use: Flags.boolean({ description: "also make it the current context" }),
  };
  async run() {
    const config = this.readConfig();
    const existing = config.contexts[this.args.name] ?? {};
    // Here --api-url and --token are what to store, not what to talk to.
    const ctx = { ...existing };
    if (this.global["api-url"]) ctx.url = apiUrl(this.global["api-url"], "--api-url");
    if (this.global.token) ctx.token = this.global.token;
    if (this.flags.project !== undefined) ctx.project = this.flags.project || undefined;
    config.contexts[this.args.name] = JSON.parse(JSON.stringify(ctx));
    if (this.flags.use || !config.current) {
      if (config.current && config.current !== this.args.name) config.previous = config.current;
      config.current = this.args.name;
    }
    this.writeConfig(config);
    this.out(`context "${this.args.name}" ${existing.url || existing.token ? "updated" : "added"} in ${this.configFile}\n`);
  }
}

// ---------------------------------------------------------------- who, what, how

const rolesText = (r: TokenRoles | undefined) => {
  if (!r) return "";
  const parts: string[] = [];
  if (r.adminRole) parts.push(`admin:${enumLabel(AdminRoleSchema, r.adminRole).toLowerCase()}`);
  for (const [p, role] of Object.entries(r.projectRoles)) parts.push(`project ${p}:${enumLabel(ProjectRoleSchema, role).toLowerCase()}`);
  for (const [t, role] of Object.entries(r.tenantRoles)) parts.push(`tenant ${t}:${enumLabel(TenantRoleSchema, role).toLowerCase()}`);
  if (r.infraPartition) parts.push(`infra:${r.infraPartition}`);
  return parts.join(", ");
};

class Whoami extends MetalCommand<typeof Whoami> {
  static override summary = "who the token belongs to and what it may do";
  async run() {
    const user = (await this.client(UserService).get({})).user!;
    const t = this.target();
    if (this.format("table") === "json" || this.format("table") === "yaml") {
      this.printOne(UserSchema, user);
      return;
    }
    this.out(
      [
        `subject: ${user.subject}`,
        `roles:   ${rolesText(user.token?.roles)}`,
        `tenants: ${user.tenants.map((m) => `${m.tenant}:${enumLabel(TenantRoleSchema, m.role).toLowerCase()}`).join(", ")}`,
        `projects: ${user.projects.map((m) => `${m.project}:${enumLabel(ProjectRoleSchema, m.role).toLowerCase()}${m.inherited ? " (via tenant)" : ""}`).join(", ")}`,
        `token:   ${user.token?.id ?? ""}${user.token?.expiresAt ? ` (expires ${isoTime(user.token.expiresAt)})` : ""}`,
        `api:     ${t.url}${t.context ? ` (context ${t.context})` : ""}`,
      ].join("\n") + "\n",
    );
  }
}

class Version extends MetalCommand<typeof Version> {
  static override summary = "versions of metalctl and of the control plane (exit code 7 when it cannot be reached)";
  async run() {
    const client = { version: this.config.version };
    const v = await this.client(VersionService)
      .get({})
      .then((res) => res.version!)
      .catch((err: unknown) => {
        // The client's version is still worth printing; the error and its exit code follow as for any command.
        this.printData({ client, server: null }, () => `client: metalctl ${client.version}\n`);
        throw err;
      });
    const line = `server: ${v.version}${v.revision ? ` (${v.revision})` : ""}, node ${v.nodeVersion}`;
    this.printData({ client, server: jsonOf(VersionSchema, v) }, () => `client: metalctl ${client.version}\n${line}\n`);
  }
}

class Health extends MetalCommand<typeof Health> {
  static override summary = "health of the control plane and its parts";
  async run() {
    const r = await this.client(HealthService).get({});
    const status = (s: number) => enumLabel(HealthStatusSchema, s).toLowerCase();
    this.printData(
      jsonOf(HealthServiceGetResponseSchema, r),
      () =>
        `overall: ${status(r.status)}\n` +
        renderTable(
          r.services,
          [
            { header: "Service", value: (s) => s.name },
            { header: "Status", value: (s) => status(s.status) },
            { header: "Message", value: (s) => s.message },
          ],
          { wide: false, headers: !this.global["no-headers"] },
        ),
    );
  }
}

// ---------------------------------------------------------------- tokens

const tokenColumns: Column<Token>[] = [
  { header: "ID", value: (t) => t.id },
  { header: "Subject", value: (t) => t.subject },
  { header: "Description", value: (t) => t.description },
  { header: "Roles", value: (t) => rolesText(t.roles) },
  { header: "Expires", value: (t) => isoTime(t.expiresAt) },
  { header: "Revoked", value: (t) => isoTime(t.revokedAt) },
  { header: "Created By", value: (t) => t.createdBy, wide: true },
  { header: "Created", value: (t) => isoTime(t.createdAt), wide: true },
];

/** A token lifetime in whole seconds (rounded up), in metalctl's one duration grammar. */
function lifetime(value: string): { seconds: bigint } {
  return { seconds: BigInt(Math.ceil(parseDurationAtLeast("expires", value, 1000) / 1000)) };
}

function rolesMap<E extends number>(schema: typeof ProjectRoleSchema | typeof TenantRoleSchema, values: string[] | undefined): Record<string, E> {
  const out: Record<string, E> = {};
  for (const v of values ?? []) {
    const [id, role] = v.split("=");
    if (!id || !role) throw new UsageError(`"${v}" is not ID=ROLE`);
    out[id] = enumParse(schema, role) as E;
  }
  return out;
}

class TokenCreate extends MetalCommand<typeof TokenCreate> {
  static override summary = "create a token (at most the roles and lifetime of your own); prints its secret once";
  static override hiddenAliases = aliasesOf("token:create", ["tokens"]);
  static override examples = ["metalctl token create --description ci --project-role p1=editor --expires 30d", "metalctl token create --subject p1-agents --infra-partition p1"];
  static override flags = {
    description: Flags.string({ default: "" }),
    "admin-role": Flags.string({ description: "viewer or admin" }),
    "project-role": Flags.string({ multiple: true, description: "PROJECT=viewer|editor|owner" }),
    "tenant-role": Flags.string({ multiple: true, description: "TENANT=viewer|editor|owner" }),
    "infra-partition": Flags.string({ description: "an edge daemon token of this partition" }),
    expires: Flags.string({ description: "lifetime, e.g. 24h or 30d" }),
    subject: Flags.string({ description: "operators: issue for this subject" }),
  };
  async run() {
    const f = this.flags;
    const roles = {
      adminRole: f["admin-role"] ? enumParse(AdminRoleSchema, f["admin-role"]) : 0,
      projectRoles: rolesMap(ProjectRoleSchema, f["project-role"]),
      tenantRoles: rolesMap(TenantRoleSchema, f["tenant-role"]),
      infraPartition: f["infra-partition"] ?? "",
    };
    const expiresIn = f.expires ? lifetime(f.expires) : undefined;
    const r = f.subject
      ? await this.client(AdminTokenService).create({ subject: f.subject, description: f.description, roles, expiresIn })
      : await this.client(TokenService).create({ description: f.description, roles, expiresIn });
    this.printData({ token: jsonOf(TokenSchema, r.token!), secret: r.secret }, () => `${r.secret}\n`);
  }
}

class TokenList extends MetalCommand<typeof TokenList> {
  static override summary = "list your tokens (operators: --subject for someone else's)";
  static override hiddenAliases = aliasesOf("token:list", ["tokens"], ["ls"]);
  static override flags = { subject: Flags.string(), "sort-by": Flags.string({ multiple: true }) };
  async run() {
    const subject = this.flags.subject;
    const items = await allPages(async (paging) => {
      const r = subject ? await this.client(AdminTokenService).list({ subject, paging }) : await this.client(TokenService).list({ paging });
      return { items: r.tokens, next: r.nextPageToken };
    });
    this.printList(TokenSchema, items, tokenColumns, { sortBy: this.flags["sort-by"] });
  }
}

class TokenRevoke extends MetalCommand<typeof TokenRevoke> {
  static override summary = "revoke a token at once";
  static override hiddenAliases = aliasesOf("token:revoke", ["tokens"], ["rm", "delete"]);
  static override args = { id: Args.string({ required: true }) };
  static override flags = { admin: Flags.boolean({ description: "operators: revoke anybody's token" }) };
  async run() {
    const r = this.flags.admin ? await this.client(AdminTokenService).revoke({ id: this.args.id }) : await this.client(TokenService).revoke({ id: this.args.id });
    this.printOne(TokenSchema, r.token!, tokenColumns);
  }
}

class TokenDescribe extends MetalCommand<typeof TokenDescribe> {
  static override summary = "show one of your tokens (never its secret)";
  static override hiddenAliases = aliasesOf("token:describe", ["tokens"], ["get"]);
  static override args = { id: Args.string({ required: true }) };
  static override flags = { admin: Flags.boolean({ description: "operators: anybody's token" }) };
  async run() {
    const r = this.flags.admin ? await this.client(AdminTokenService).get({ id: this.args.id }) : await this.client(TokenService).get({ id: this.args.id });
    this.printOne(TokenSchema, r.token!, tokenColumns);
  }
}

class TokenUpdate extends MetalCommand<typeof TokenUpdate> {
  static override summary = "change the description of a token (nothing else of it changes)";
  static override hiddenAliases = aliasesOf("token:update", ["tokens"]);
  static override args = { id: Args.string({ required: true }) };
  static override flags = {
    description: Flags.string({ required: true }),
    admin: Flags.boolean({ description: "operators: anybody's token" }),
  };
  async run() {
    const req = { id: this.args.id, description: this.flags.description };
    const r = this.flags.admin ? await this.client(AdminTokenService).update(req) : await this.client(TokenService).update(req);
    this.printOne(TokenSchema, r.token!, tokenColumns);
  }
}

class TokenRefresh extends MetalCommand<typeof TokenRefresh> {
  static override summary = "replace a token (by default the one you use) by a new one with the same roles and lifetime; prints its secret once";
  static override description = "The old token is revoked at once; tokens created from it keep working under the new one. Refreshing the token of the current context stores the new secret there.";
  static override hiddenAliases = aliasesOf("token:refresh", ["tokens"]);
  static override examples = ["metalctl token refresh", "metalctl token refresh 0190... --admin"];
  static override args = { id: Args.string({ description: "the token to refresh; default: the one you use" }) };
  static override flags = { admin: Flags.boolean({ description: "operators: anybody's token" }) };
  async run() {
    const id = this.args.id ?? "";
    if (this.flags.admin && id === "") throw new UsageError("--admin needs the id of the token to refresh");
    const r = this.flags.admin ? await this.client(AdminTokenService).refresh({ id }) : await this.client(TokenService).refresh({ id });
    if (id === "") this.storeRefreshed(r.secret);
    this.printData({ token: jsonOf(TokenSchema, r.token!), secret: r.secret }, () => `${r.secret}\n`);
  }

  /** The calling token is revoked now: where it came from the current context, the new one takes its place. */
  private storeRefreshed(secret: string) {
    const { context } = this.target();
    const config = this.readConfig();
    const ctx = context === undefined ? undefined : config.contexts[context];
    const fromContext = this.global.token === undefined && this.env.METALCTL_API_TOKEN === undefined && ctx?.token !== undefined;
    if (!fromContext) return;
    ctx.token = secret;
    this.writeConfig(config);
    this.err(`the new token is stored in context "${context}"\n`);
  }
}

class TokenRotateSigningKey extends MetalCommand<typeof TokenRotateSigningKey> {
  static override summary = "operators: sign new tokens with a new key; older keys verify their tokens until those expire";
  static override hiddenAliases = aliasesOf("token:rotate-signing-key", ["tokens"]);
  async run() {
    const r = await this.client(AdminTokenService).rotateSigningKey({});
    this.printData(
      {
        key: { id: r.key?.id ?? "", createdAt: isoTime(r.key?.createdAt) },
        kept: r.kept.map((k) => ({ id: k.id, createdAt: isoTime(k.createdAt) })),
        retiredIds: r.retiredIds,
      },
      () => `signing key ${r.key?.id ?? ""} signs from now on; kept ${r.kept.length} older key(s), retired ${r.retiredIds.length}${r.retiredIds.length ? ` (${r.retiredIds.join(", ")})` : ""}\n`,
    );
  }
}

// ---------------------------------------------------------------- completion

class Completion extends MetalCommand<typeof Completion> {
  static override summary = 'print a shell completion script: eval "$(metalctl completion bash)"';
  static override description = "Completes commands, aliases, each command's flags and the values of flags with fixed options (-o), after `metalctl` and after `npx metalctl`.";
  static override args = { shell: Args.string({ required: true, options: ["bash", "zsh"] }) };
  async run() {
    const commands = this.config.commands as unknown as CompletableCommand[];
    this.out(completionScript(this.args.shell as "bash" | "zsh", commands, MetalCommand.baseFlags as unknown as CompletableCommand["flags"]));
  }
}

export const MISC_COMMANDS: Record<string, typeof Command> = {
  "context:list": ContextList,
  "context:use": ContextUse,
  "context:add": ContextAdd,
  whoami: Whoami,
  version: Version,
  health: Health,
  "token:create": TokenCreate,
  "token:list": TokenList,
  "token:revoke": TokenRevoke,
  "token:describe": TokenDescribe,
  "token:update": TokenUpdate,
  "token:refresh": TokenRefresh,
  "token:rotate-signing-key": TokenRotateSigningKey,
  completion: Completion,
};
