import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Args, type Command, Flags } from "@oclif/core";
import { AuditService as AdminAuditService } from "../../gen/metal/admin/v1/audit_pb.js";
import { type AuditEntry, AuditEntrySchema, type AuditFilterSchema, AuditService } from "../../gen/metal/api/v1/audit_pb.js";
import { aliasesOf, MetalCommand } from "../base.js";
import { parseDuration } from "../duration.js";
import { type Column, isoTime, UsageError } from "../output.js";

const auditColumns: Column<AuditEntry>[] = [
  { header: "Time", value: (e) => isoTime(e.time) },
  { header: "Subject", value: (e) => e.subject },
  { header: "Method", value: (e) => e.method.replace(/^\/(metal\.)?/, "") },
  { header: "Targets", value: (e) => e.targetIds.join(",") },
  { header: "Outcome", value: (e) => e.outcome },
  { header: "Project", value: (e) => e.project },
  { header: "ID", value: (e) => e.id, wide: true },
  { header: "Request ID", value: (e) => e.requestId, wide: true },
  { header: "Error", value: (e) => e.errorMessage, wide: true },
];

function time(flag: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--${flag}: "${value}" is not a time like 2026-12-05T17:00:00Z`);
  return d;
}

class AuditList extends MetalCommand<typeof AuditList> {
  static override summary = "list audit entries, newest first: the project's, or (operators, --admin) everyone's";
  static override hiddenAliases = aliasesOf("audit:list", ["audits"], ["ls"]);
  static override flags = {
    project: Flags.string({ description: "project (default: the context's); with --admin only narrows" }),
    admin: Flags.boolean({ description: "operators: the whole trail" }),
    since: Flags.string({ description: "only entries of the last DURATION (e.g. 1h, 7d)" }),
    from: Flags.string({ description: "only entries at or after this time (ISO 8601)" }),
    to: Flags.string({ description: "only entries before this time (ISO 8601)" }),
    subject: Flags.string({ description: "only calls of this token subject" }),
    method: Flags.string({ description: 'only this method (full name or its end, e.g. "IPService/Create")' }),
    target: Flags.string({ description: "only calls naming this id (machine, network, IP, project, ...)" }),
    outcome: Flags.string({ description: 'only this outcome: "ok" or a code such as permission_denied' }),
    limit: Flags.integer({ description: "at most this many entries", default: 100, min: 1, max: 1000 }),
  };
  async run() {
    const f = this.flags;
    if (f.since && f.from) throw new UsageError("--since and --from exclude each other");
    const from = f.since ? new Date(Date.now() - parseDuration("since", f.since)) : time("from", f.from);
    const to = time("to", f.to);
    const filter: MessageInitShape<typeof AuditFilterSchema> = {
      from: from ? timestampFromDate(from) : undefined,
      to: to ? timestampFromDate(to) : undefined,
      subject: f.subject,
      method: f.method,
      targetId: f.target,
      outcome: f.outcome,
    };
    const paging = { limit: f.limit, pageToken: "" };
    const project = this.project(f.project);
    let entries: AuditEntry[];
    if (f.admin) entries = (await this.client(AdminAuditService).list({ filter, project, paging })).entries;
    else if (project) entries = (await this.client(AuditService).list({ filter, project, paging })).entries;
    else throw new UsageError("--project is required (or set a project in the context), or --admin for the whole trail (operators)");
    this.printList(AuditEntrySchema, entries, auditColumns);
  }
}

class AuditDescribe extends MetalCommand<typeof AuditDescribe> {
  static override summary = "show one audit entry with its (redacted) request (operators)";
  static override hiddenAliases = aliasesOf("audit:describe", ["audits"], ["get"]);
  static override args = { id: Args.string({ required: true }) };
  async run() {
    const r = await this.client(AdminAuditService).get({ id: this.args.id });
    this.printOne(AuditEntrySchema, r.entry!);
  }
}

export const AUDIT_COMMANDS: Record<string, typeof Command> = {
  "audit:list": AuditList,
  "audit:describe": AuditDescribe,
};
