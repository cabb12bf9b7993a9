import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import ssh2, { type Connection, type ServerChannel, type Session } from "ssh2";
import type { ProjectDirectory } from "../auth/project-directory.js";
import type { TokenAuthority } from "../auth/token-authority.js";
import { allocationTopic, type FanoutBus } from "../bus/fanout.js";
import type { DbHandle } from "../db/handle.js";
import type { Logger } from "../logger.js";
import { machineRepository } from "../repositories/machine-repository.js";
import type { ConsoleOpener } from "../sessions/console/console-opener.js";
import type { ConsoleSession } from "../sessions/console/relay-broker.js";
import type { ConsoleOpen } from "../usecases/audit/console-open.js";
import { type ConsoleMachine, decideConsoleAccess, fingerprint, holdsKey, type PresentedToken, TOKEN_ENV } from "./access.js";
import { loadOrCreateHostKey } from "./host-key.js";

export interface ConsoleServerDeps {
  db: DbHandle;
  authority: TokenAuthority;
  projects: ProjectDirectory;
  /** Opens consoles on this replica or, through the replica holding the partition's metal-bmc, on another. */
  consoles: ConsoleOpener;
  log: Logger;
  /** Wakes an open console the moment its machine's allocation changes (freed, allocated anew); polling stays the safety net. */
  bus?: FanoutBus;
  /** Records every console opened, and every refusal to a valid token, in the audit trail. */
  recordOpen?: (open: ConsoleOpen) => Promise<void>;
}

export interface ConsoleServerOptions {
  /** host:port; port 0 picks a free one (tests). */
  listen: string;
  /** A console without a byte in either direction for this long is closed; 0 never. */
  idleTimeoutMs: number;
  /** How often an open console re-checks the allocation and the token. */
  pollMs?: number;
}

export interface ConsoleServer {
  readonly host: string;
  readonly port: number;
  /** The host key as it goes into known_hosts after the host name: "ssh-ed25519 AAAA…". */
  readonly hostKey: string;
  /** Consoles open right now. */
  readonly sessions: number;
  /** Stops accepting, ends every open console, waits for the listener to close. */
  close(): Promise<void>;
}

const DEFAULT_POLL_MS = 5_000;

/** What a client without any SSH key is told (as keyboard-interactive instructions, which OpenSSH prints). */
export const NO_KEY_HINT =
  "metal-console: no usable SSH key was offered. A console takes one of the SSH keys the machine was allocated with " +
  "(metalctl machine create --sshpublickey FILE; by default ~/.ssh/id_ed25519.pub or id_rsa.pub). " +
  "Create one with ssh-keygen -t ed25519 and pass it with ssh -i KEY or metalctl machine console -i KEY.";

/** Milliseconds as a person would say them in a message. */
function humanDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

/**
 * The SSH front end of the console (metal-console of the original, inside
 * metal-api). `ssh <machine-id>@host -p port`: any correctly signed public key
 * is let in at the SSH layer, and who may see which console is decided in the
 * session, so that a refusal reaches the user as a sentence and an exit
 * status rather than as "Permission denied (publickey)", which explains
 * nothing. On success the bytes go through the partition's metal-bmc
 * (ConsoleOpener: RelayBroker on this replica, or ReplicaService.Console
 * to the replica that holds its session), so the partition opens no port.
 */
export async function startConsoleServer(deps: ConsoleServerDeps, opts: ConsoleServerOptions): Promise<ConsoleServer> {
  const hostKey = await loadOrCreateHostKey(deps.db);
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const clients = new Set<Connection>();
  const open = new Set<ConsoleSession>();
  const log = deps.log.child({ component: "console" });

  const server = new ssh2.Server({ hostKeys: [hostKey.privateKey], ident: "metal-console" }, (client) => {
    clients.add(client);
    // A keystroke's answer leaves in several small writes; with Nagle on, each waits for the client's delayed ACK (~40 ms).
    // (ssh2's server Connection has setNoDelay; its type declarations only list it for the client.)
    (client as Connection & { setNoDelay(on: boolean): void }).setNoDelay(true);
    let user = "";
    let keyBlob = "";
    client.on("error", (err) => log.debug({ err }, "console connection error"));
    client.on("close", () => clients.delete(client));
    client.on("authentication", (ctx) => {
      // A client reaches keyboard-interactive only when it has no key to offer at all: it learns how to get one,
      // instead of a bare "Permission denied (publickey)". Nothing in the answer depends on the machine.
      if (ctx.method === "keyboard-interactive") return ctx.prompt([], "metal-console", NO_KEY_HINT, () => ctx.reject(["publickey"]));
      if (ctx.method !== "publickey") return ctx.reject(["publickey", "keyboard-interactive"]);
      // Without a signature the client only asks whether this key would do: every key might, the session decides.
      if (!ctx.signature || !ctx.blob) return ctx.accept();
      const parsed = ssh2.utils.parseKey(ctx.key.data);
      const key = Array.isArray(parsed) ? parsed[0] : parsed;
      if (!key || key instanceof Error) return ctx.reject(["publickey"]);
      const same = key.getPublicSSH();
      if (same.length !== ctx.key.data.length || !timingSafeEqual(same, ctx.key.data)) return ctx.reject(["publickey"]);
      if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject(["publickey"]);
      user = ctx.username;
      keyBlob = ctx.key.data.toString("base64");
      ctx.accept();
    });
    client.on("ready", () => {
      client.on("session", (acceptSession) => {
        handleSession(acceptSession(), user, keyBlob);
      });
    });
  });

  function handleSession(session: Session, machineId: string, offeredKey: string): void {
    let token: string | undefined;
    let size: { columns: number; rows: number } | undefined;
    let relay: ConsoleSession | undefined;
    session.on("env", (accept, _reject, info) => {
      if (info.key === TOKEN_ENV) token = info.val;
      accept?.();
    });
    session.on("pty", (accept, _reject, info) => {
      size = { columns: info.cols, rows: info.rows };
      accept?.();
    });
    session.on("window-change", (accept, _reject, info) => {
      size = { columns: info.cols, rows: info.rows };
      if (info.cols > 0 && info.rows > 0) relay?.resize(info.cols, info.rows);
      accept?.();
    });
    session.on("exec", (accept) => {
      const channel = accept();
      refuse(channel, "this server opens serial consoles only; run ssh without a command");
    });
    session.on("subsystem", (_accept, reject) => reject());
    session.on("sftp", (_accept, reject) => reject());
    session.on("shell", (accept) => {
      const channel = accept();
      connect(
        channel,
        machineId,
        offeredKey,
        token,
        () => size,
        (c) => (relay = c),
      ).catch((err: unknown) => {
        log.error({ err, machineId }, "console session failed");
        refuse(channel, "the console failed; see the control plane's log");
      });
    });
  }

  function refuse(channel: ServerChannel, message: string): void {
    channel.stderr.write(`metal-console: ${message}\r\n`);
    channel.exit(1);
    channel.end();
  }

  /** One read whether the machine exists or not: an outsider cannot time the difference. */
  async function machineOf(id: string): Promise<ConsoleMachine | undefined> {
    const found = await machineRepository.find(deps.db, id);
    if (!found) return undefined;
    const { machine: m } = found;
    const a = m.allocation;
    return {
      id: m.id,
      partition: m.partitionId,
      allocation: a ? { uuid: a.uuid, project: a.project, role: a.role, sshKeys: a.sshKeys, createdAt: new Date(a.createdAt) } : null,
    };
  }

  async function presented(secret: string | undefined): Promise<PresentedToken> {
    if (secret === undefined || secret === "") return { kind: "none" };
    try {
      return { kind: "valid", principal: await deps.authority.verify(secret) };
    } catch (err) {
      return { kind: "invalid", reason: (err as { rawMessage?: string }).rawMessage ?? String(err) };
    }
  }

  async function decide(machineId: string, offeredKey: string, secret: string | undefined) {
    const id = machineId.toLowerCase();
    const machine = /^[0-9a-f-]{36}$/.test(id) ? await machineOf(id) : undefined;
    const token = await presented(secret);
    const a = machine?.allocation;
    // The project's tenant matters only to tokens that carry tenant roles, and only to a holder of one of the
    // allocation's keys: an outsider's refusal costs the same one read whichever machine they name.
    const tenant = a && token.kind === "valid" && Object.keys(token.principal.roles.tenantRoles).length > 0 && holdsKey(a.sshKeys, offeredKey) ? await deps.projects.tenantOf(a.project) : undefined;
    const decision = decideConsoleAccess(machine, machineId, offeredKey, token, tenant);
    // For the audit trail: who asked (a verified token only) and whose machine it is.
    const audit = { principal: token.kind === "valid" ? token.principal : undefined, machineId: id, project: a?.project, keyFingerprint: fingerprint(offeredKey) };
    return { decision, audit };
  }

  async function connect(
    channel: ServerChannel,
    machineId: string,
    offeredKey: string,
    secret: string | undefined,
    size: () => { columns: number; rows: number } | undefined,
    opened: (c: ConsoleSession) => void,
  ): Promise<void> {
    const { decision, audit } = await decide(machineId, offeredKey, secret);
    if (!decision.allow) {
      log.info({ machineId, key: fingerprint(offeredKey), reason: decision.message }, "console refused");
      await deps.recordOpen?.({ ...audit, refusal: { code: Code.PermissionDenied, message: decision.message } });
      return refuse(channel, decision.message);
    }
    const id = machineId.toLowerCase();
    let relay: ConsoleSession;
    try {
      // What the machine printed before its current allocation (replayed scrollback: a previous tenant's session) is withheld.
      relay = await deps.consoles.openConsole(decision.partition, id, { outputSince: decision.outputSince });
    } catch (err) {
      const message = `cannot open the console of machine "${id}": ${(err as { rawMessage?: string }).rawMessage ?? String(err)}`;
      await deps.recordOpen?.({ ...audit, refusal: { code: ConnectError.from(err).code, message } });
      return refuse(channel, message);
    }
    if (channel.destroyed || !channel.writable) {
      relay.close();
      return;
    }
    opened(relay);
    open.add(relay);
    void deps.recordOpen?.(audit);
    log.info({ machineId: id, admin: decision.admin, key: fingerprint(offeredKey) }, "console opened");
    const s = size();
    // A client without a terminal of its own (ssh -tt < pipe) reports 0×0, which means "unknown", not a size.
    if (s && s.columns > 0 && s.rows > 0) relay.resize(s.columns, s.rows);
    channel.write(`connected to ${id}, exit with ~.\r\n`);

    let ended = false;
    let unsubscribe: (() => void) | undefined;
    let idle: NodeJS.Timeout | undefined;
    const end = (message: string | undefined, code: number) => {
      if (ended) return;
      ended = true;
      clearInterval(poll);
      unsubscribe?.();
      clearTimeout(idle);
      open.delete(relay);
      relay.close();
      if (channel.writable) {
        if (message) channel.write(`\r\nmetal-console: ${message}\r\n`);
        channel.exit(code);
        channel.end();
      }
      log.info({ machineId: id, reason: message ?? "client closed" }, "console closed");
    };
    const touch = () => {
      if (opts.idleTimeoutMs <= 0) return;
      clearTimeout(idle);
      idle = setTimeout(() => end(`no input or output for ${humanDuration(opts.idleTimeoutMs)}; closing the console`, 1), opts.idleTimeoutMs);
    };
    touch();

    relay.onData((d) => {
      touch();
      channel.write(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
    });
    relay.onClose((reason) => end(reason ? `the console of machine "${id}" ended: ${(reason as { rawMessage?: string }).rawMessage ?? reason.message}` : `the console of machine "${id}" ended`, reason ? 1 : 0));
    channel.on("data", (d: Buffer) => {
      touch();
      relay.write(d);
    });
    channel.on("close", () => end(undefined, 0));
    channel.on("error", () => end(undefined, 0));

    // Access is re-checked while the console is open: a freed or reallocated
    // machine belongs to someone else now, and a revoked token must not keep a console.
    // A change of the allocation wakes the check at once (the bus); the poll bounds a lost wake-up and token revocation.
    let checking = false;
    let again = false;
    const check = () => {
      if (ended) return;
      if (checking) return void (again = true);
      checking = true;
      recheck()
        .catch((err: unknown) => log.warn({ err, machineId: id }, "re-checking console access failed; trying again"))
        .finally(() => {
          checking = false;
          if (again) {
            again = false;
            check();
          }
        });
    };
    const poll = setInterval(check, pollMs);
    unsubscribe = deps.bus?.subscribe(allocationTopic(id), check);
    const recheck = async () => {
      if (secret) {
        const t = await presented(secret);
        if (t.kind === "invalid") return end(`the token in ${TOKEN_ENV} is no longer valid (${t.reason}); closing the console`, 1);
      }
      if (decision.admin) return;
      const m = await machineOf(id);
      if (!m?.allocation) return end(`machine "${id}" was freed; closing the console`, 1);
      if (m.allocation.uuid !== decision.allocationUuid) return end(`machine "${id}" was allocated anew; closing the console`, 1);
    };
  }

  const [host, portText] = splitHostPort(opts.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(portText), host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err: Error) => log.error({ err }, "console listener error"));
  const address = server.address() as AddressInfo;
  log.info({ address: `${address.address}:${address.port}` }, `metal-console listening on ${address.address}:${address.port}`);

  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    hostKey: hostKey.publicKey,
    get sessions() {
      return open.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        // A peer that never answers the disconnect must not hold up a shutdown.
        const giveUp = setTimeout(resolve, 2_000);
        giveUp.unref();
        server.close(() => {
          clearTimeout(giveUp);
          resolve();
        });
        for (const relay of [...open]) relay.close(new Error("the control plane is shutting down"));
        for (const c of [...clients]) c.end();
      });
      return closing;
    },
  };
}

function splitHostPort(hostPort: string): [string, string] {
  const i = hostPort.lastIndexOf(":");
  let host = hostPort.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return [host === "" ? "0.0.0.0" : host, hostPort.slice(i + 1)];
}
