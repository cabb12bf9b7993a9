import { createHash, randomBytes } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ReplicaServiceConsoleInputRequestSchema } from "../../../gen/metal/internal/v1/replica_pb.js";
import type { ProjectDirectory } from "../../auth/project-directory.js";
import type { TokenAuthority } from "../../auth/token-authority.js";
import { allocationTopic, type FanoutBus } from "../../bus/fanout.js";
import type { ConsoleMachine } from "../../console/access.js";
import { type BrowserRefusalCode, decideBrowserConsoleAccess } from "../../console/browser-access.js";
import type { DbHandle } from "../../db/handle.js";
import type { Principal } from "../../domain/roles.js";
import { exhausted, failedPrecondition } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { machineRepository } from "../../repositories/machine-repository.js";
import { liveReplicaAddresses } from "../../repositories/replica-address-repository.js";
import type { ConsoleOpener } from "../../sessions/console/console-opener.js";
import { validator } from "../../validate/validator.js";
import { type BrowserConsoleEvent, BrowserSession } from "./browser-session.js";

export interface BrowserConsoleLimits {
  /** Consoles one subject may have open on this replica at once. */
  perSubject: number;
  /** Consoles open on this replica at once. */
  total: number;
  /** A console without a byte in either direction for this long is closed; 0 never (as the SSH console: METAL_CONSOLE_IDLE_TIMEOUT). */
  idleTimeoutMs: number;
  /** How often an open console re-checks the allocation and the token (a change of the allocation wakes it at once through the bus). */
  pollMs: number;
  /** Input bytes per Input call. */
  maxInputBytes: number;
  /** Output waiting for a browser that does not read. */
  maxPendingBytes: number;
}

export const DEFAULT_BROWSER_CONSOLE_LIMITS: BrowserConsoleLimits = {
  perSubject: 8,
  total: 256,
  idleTimeoutMs: 30 * 60_000,
  pollMs: 5_000,
  maxInputBytes: 4096,
  maxPendingBytes: 1024 * 1024,
};

export interface BrowserConsoleDeps {
  db: DbHandle;
  projects: ProjectDirectory;
  authority: TokenAuthority;
  /** The SSH console's opener: the partition's metal-bmc on this replica or through the replica that holds it. */
  consoles: ConsoleOpener;
  /** Wakes an open console the moment its machine's allocation changes; polling stays the safety net. */
  bus?: FanoutBus;
  log: Logger;
  /** This replica's id: session ids carry a tag of it, so Input that reached another replica is told so. */
  replicaId: string;
  limits?: Partial<BrowserConsoleLimits>;
  /** Passes Input on to the replica holding a console (RemoteConsoles); absent: Input for another replica's console is FailedPrecondition. */
  peers?: { consoleInput(replica: { id: string; address: string }, req: MessageInitShape<typeof ReplicaServiceConsoleInputRequestSchema>): Promise<void> };
  /** A replica whose heartbeat is older than this is taken for dead (METAL_REPLICA_TIMEOUT). */
  replicaTimeoutMs?: number;
}

export interface AttachRequest {
  machineId: string;
  project: string;
  columns: number;
  rows: number;
}

export interface InputRequest {
  sessionId: string;
  project: string;
  data: Uint8Array;
  resize?: { columns: number; rows: number };
}

/** A terminal larger than this is not a terminal. */
const MAX_DIMENSION = 10_000;
/** 128 random bits, base64url, a dot, the replica tag. */
const SESSION_ID = /^([A-Za-z0-9_-]{22})\.([0-9a-f]{12})$/;
/** How long the list of live replicas is trusted for passing Input on. */
const PEER_CACHE_MS = 5_000;
/** setTimeout takes at most this; a token living longer is caught by the poll. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const CODES: Record<BrowserRefusalCode, Code> = { not_found: Code.NotFound, permission_denied: Code.PermissionDenied, failed_precondition: Code.FailedPrecondition };
const rawMessage = (err: unknown) => (err as { rawMessage?: string }).rawMessage ?? String(err);

/**
 * The serial console in the browser (metal.api.v1.ConsoleService): the SSH
 * console's access rules (decideBrowserConsoleAccess), its opener, its
 * re-checks, and bounds of its own. A console lives on the replica that
 * holds its Attach stream; Input finds it by a random id bound to the token
 * that attached.
 */
export class BrowserConsoles {
  private readonly limits: BrowserConsoleLimits;
  private readonly sessions = new Map<string, BrowserSession>();
  /** Places taken per subject, counted from the start of an Attach (a lookup in flight holds one too). */
  private readonly places = new Map<string, number>();
  private placesTotal = 0;
  private readonly replicaTag: string;
  private readonly log: Logger;
  private peersByTag = new Map<string, { id: string; address: string }>();
  private peersReadAt = 0;

  constructor(private readonly deps: BrowserConsoleDeps) {
    this.limits = { ...DEFAULT_BROWSER_CONSOLE_LIMITS, ...deps.limits };
    this.replicaTag = replicaTagOf(deps.replicaId);
    this.log = deps.log.child({ component: "browser-console" });
  }

  /** Consoles open on this replica. */
  get open(): number {
    return this.sessions.size;
  }

  /**
   * Decides, opens the console and returns the Attach stream's events.
   * Refusals are thrown before the stream starts. `secret` is the bearer
   * token of the call, kept only to re-verify it while the console is open.
   */
  async attach(principal: Principal, secret: string | undefined, req: AttachRequest, signal: AbortSignal): Promise<AsyncIterable<BrowserConsoleEvent>> {
    const v = validator().uuid("machine_id", req.machineId);
    if (req.project !== "") v.id("project", req.project);
    if (req.columns > MAX_DIMENSION || req.rows > MAX_DIMENSION) v.add("columns/rows", `at most ${MAX_DIMENSION}`);
    v.check();
    const machineId = req.machineId.toLowerCase();
    const release = this.takePlace(principal.subject);
    try {
      const machine = await this.machineOf(machineId);
      const tenant = Object.keys(principal.roles.tenantRoles).length > 0 && req.project !== "" ? await this.deps.projects.tenantOf(req.project) : undefined;
      const decision = decideBrowserConsoleAccess(machine, req.machineId, req.project, principal, tenant);
      if (!decision.allow) {
        this.log.info({ machineId, subject: principal.subject, reason: decision.message }, "browser console refused");
        throw new ConnectError(decision.message, CODES[decision.code]);
      }
      let relay: Awaited<ReturnType<ConsoleOpener["openConsole"]>>;
      try {
        relay = await this.deps.consoles.openConsole(decision.partition, machineId, { outputSince: decision.outputSince, signal });
      } catch (err) {
        throw new ConnectError(`cannot open the console of machine "${machineId}": ${rawMessage(err)}`, ConnectError.from(err).code);
      }
      if (signal.aborted) {
        relay.close();
        throw new ConnectError("the Attach call was cancelled", Code.Canceled);
      }
      if (req.columns > 0 && req.rows > 0) relay.resize(req.columns, req.rows);
      const session = new BrowserSession(`${randomBytes(16).toString("base64url")}.${this.replicaTag}`, machineId, req.project, principal.tokenId, principal.subject, relay, {
        maxPendingBytes: this.limits.maxPendingBytes,
      });
      this.sessions.set(session.id, session);
      session.onEnd(() => {
        this.sessions.delete(session.id);
        release();
      });
      this.watch(session, principal, secret, decision.admin ? undefined : decision.allocationUuid, signal);
      relay.onClose((reason) => session.end(reason ? `the console of machine "${machineId}" ended: ${rawMessage(reason)}` : `the console of machine "${machineId}" ended`));
      this.log.info({ machineId, subject: principal.subject, admin: decision.admin }, "browser console opened");
      return session.events();
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Hands input to a console the caller's token attached; one answer for
   * every session that is not theirs or not there. A session of another
   * replica is passed on to it (ReplicaService.ConsoleInput) when replicas
   * can reach each other (peers), else FailedPrecondition.
   */
  async input(principal: Principal, req: InputRequest): Promise<void> {
    this.validateInput(req);
    const tag = SESSION_ID.exec(req.sessionId)?.[2];
    if (tag !== undefined && tag !== this.replicaTag) return this.forward(tag, principal.tokenId, req);
    this.deliver(principal.tokenId, req);
  }

  /** Input that another replica received for a console held here; `tokenId` is the token its user sent. */
  inputFromReplica(tokenId: string, req: InputRequest): void {
    this.validateInput(req);
    this.deliver(tokenId, req);
  }

  private validateInput(req: InputRequest): void {
    const v = validator();
    if (req.sessionId.length > 64) v.add("session_id", "not a console session id");
    if (req.data.length > this.limits.maxInputBytes) v.add("data", `at most ${this.limits.maxInputBytes} bytes per call`);
    const r = req.resize;
    if (r && (r.columns < 1 || r.rows < 1 || r.columns > MAX_DIMENSION || r.rows > MAX_DIMENSION)) v.add("resize", `columns and rows from 1 to ${MAX_DIMENSION}`);
    v.check();
  }

  private deliver(tokenId: string, req: InputRequest): void {
    const session = SESSION_ID.test(req.sessionId) ? this.sessions.get(req.sessionId) : undefined;
    if (!session || session.ended || session.tokenId !== tokenId || session.project !== req.project) throw sessionNotFound(req.sessionId);
    if (req.resize) session.resize(req.resize.columns, req.resize.rows);
    session.write(req.data);
  }

  private async forward(tag: string, tokenId: string, req: InputRequest): Promise<void> {
    const peers = this.deps.peers;
    if (!peers) {
      throw failedPrecondition(
        "this console session is held by another replica of the control plane, and this one cannot pass input on: send Input over the connection that carries its Attach stream " +
          "(HTTP/2 does this by itself; over HTTP/1.1 the load balancer must keep a browser on one replica)",
      );
    }
    const peer = await this.peerTagged(tag);
    // The replica that held it is gone, and its consoles with it.
    if (!peer) throw sessionNotFound(req.sessionId);
    try {
      await peers.consoleInput(peer, { sessionId: req.sessionId, tokenId, project: req.project, data: req.data, resize: req.resize });
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.NotFound || e.code === Code.InvalidArgument) throw sessionNotFound(req.sessionId);
      // Which replica, and why, is for the operator's log, not for the browser.
      this.log.warn({ err, replica: peer.id }, "passing browser console input to another replica failed");
      throw new ConnectError("the replica of the control plane that holds this console could not be reached; try again or attach anew", Code.Unavailable);
    }
  }

  /** The live replica whose tag a session id carries; the list is read again after PEER_CACHE_MS. */
  private async peerTagged(tag: string): Promise<{ id: string; address: string } | undefined> {
    const fresh = Date.now() - this.peersReadAt < PEER_CACHE_MS;
    // A tag it lacks may be a replica started since; an unknown tag costs at most one read a second.
    if (!fresh || (!this.peersByTag.has(tag) && Date.now() - this.peersReadAt > 1_000)) {
      const live = await liveReplicaAddresses(this.deps.db, this.deps.replicaId, this.deps.replicaTimeoutMs ?? 30_000);
      this.peersByTag = new Map(live.map((r) => [replicaTagOf(r.id), r]));
      this.peersReadAt = Date.now();
    }
    return this.peersByTag.get(tag);
  }

  /** Ends every open console (shutdown). */
  closeAll(reason: string): void {
    for (const s of [...this.sessions.values()]) s.end(reason);
  }

  private takePlace(subject: string): () => void {
    if (this.placesTotal >= this.limits.total) throw exhausted(`too many consoles open on this server (limit ${this.limits.total}); retry later`);
    const held = this.places.get(subject) ?? 0;
    if (held >= this.limits.perSubject) throw exhausted(`too many consoles open for "${subject}" (limit ${this.limits.perSubject}); close one first`);
    this.places.set(subject, held + 1);
    this.placesTotal++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.placesTotal--;
      const n = (this.places.get(subject) ?? 1) - 1;
      if (n <= 0) this.places.delete(subject);
      else this.places.set(subject, n);
    };
  }

  /** One read whether the machine exists or not (the id is a valid UUID by now): an outsider cannot time the difference. */
  private async machineOf(id: string): Promise<ConsoleMachine | undefined> {
    const found = await machineRepository.find(this.deps.db, id);
    if (!found) return undefined;
    const { machine: m } = found;
    const a = m.allocation;
    return {
      id: m.id,
      partition: m.partitionId,
      allocation: a ? { uuid: a.uuid, project: a.project, role: a.role, sshKeys: a.sshKeys, createdAt: new Date(a.createdAt) } : null,
    };
  }

  /**
   * What ends an open console besides its relay, as over SSH: the browser
   * leaving (the call's signal), no byte either way for the idle timeout,
   * the token expiring or being revoked, and, for everybody but operator
   * admins, the machine freed or allocated anew.
   */
  private watch(session: BrowserSession, principal: Principal, secret: string | undefined, allocationUuid: string | undefined, signal: AbortSignal): void {
    const id = session.machineId;
    const timers: NodeJS.Timeout[] = [];
    const onAbort = () => session.end("");
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();

    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      if (this.limits.idleTimeoutMs <= 0) return;
      clearTimeout(idle);
      idle = setTimeout(() => session.end(`no input or output for ${humanDuration(this.limits.idleTimeoutMs)}; closing the console`), this.limits.idleTimeoutMs);
    };
    touch();
    session.onActivity(touch);

    const untilExpiry = principal.expiresAt.getTime() - Date.now();
    if (untilExpiry <= MAX_TIMER_MS) timers.push(setTimeout(() => session.end("your token expired; closing the console"), Math.max(0, untilExpiry)));

    let checking = false;
    let again = false;
    const recheck = async () => {
      if (secret) {
        const verdict = await this.deps.authority.verify(secret).then(
          () => undefined,
          (err: unknown) => (ConnectError.from(err).code === Code.Unauthenticated ? rawMessage(err) : Promise.reject(err)),
        );
        if (verdict !== undefined) return session.end(`your token is no longer valid (${verdict}); closing the console`);
      }
      if (allocationUuid === undefined) return;
      const m = await this.machineOf(id);
      if (!m?.allocation) return session.end(`machine "${id}" was freed; closing the console`);
      if (m.allocation.uuid !== allocationUuid) return session.end(`machine "${id}" was allocated anew; closing the console`);
    };
    const check = () => {
      if (session.ended) return;
      if (checking) return void (again = true);
      checking = true;
      recheck()
        .catch((err: unknown) => this.log.warn({ err, machineId: id }, "re-checking browser console access failed; trying again"))
        .finally(() => {
          checking = false;
          if (again) {
            again = false;
            check();
          }
        });
    };
    const poll = setInterval(check, this.limits.pollMs);
    const unsubscribe = this.deps.bus?.subscribe(allocationTopic(id), check);
    session.onEnd(() => {
      clearInterval(poll);
      clearTimeout(idle);
      for (const t of timers) clearTimeout(t);
      unsubscribe?.();
      signal.removeEventListener("abort", onAbort);
      this.log.info({ machineId: id, subject: session.subject }, "browser console closed");
    });
  }
}

/** A hash of the replica id, not the id itself: the id names the host and process, which is not the browser's business. */
function replicaTagOf(replicaId: string): string {
  return createHash("sha256").update(replicaId).digest("hex").slice(0, 12);
}

/** One answer for every session that is not the caller's or not there. */
function sessionNotFound(sessionId: string): ConnectError {
  return new ConnectError(`console session "${sessionId}" not found (it ended, or was attached with another token)`, Code.NotFound);
}

/** Milliseconds as a person would say them in a message. */
function humanDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
