import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { type BackoffPolicy, backoffDelay, sleep } from "../../client/backoff.js";
import type { BootService } from "../../gen/metal/infra/v1/boot_pb.js";

/** Failed renewals are tried again after 1 s, doubling up to a minute: the credential lives at least a minute, usually an hour. */
const RENEW_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, jitter: 0.5 };

/** A renewal that takes longer is given up and tried again after the backoff: a hung call must not outlive the credential. */
const RENEW_TIMEOUT_MS = 30_000;

/** The `iat` of a JWT, in ms of the issuer's clock; undefined when `secret` is no readable JWT. Nothing is verified: it only times the renewal. */
function issuedAt(secret: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(secret.split(".")[1] ?? "", "base64url").toString("utf8")) as { iat?: unknown };
    return typeof payload.iat === "number" && Number.isFinite(payload.iat) ? payload.iat * 1000 : undefined;
  } catch {
    return undefined;
  }
}

type Log = (msg: string, fields?: Record<string, unknown>) => void;

/**
 * metal-hammer's machine credential: handed out through the boot path
 * (BootService.Boot, on the kernel command line), good only for this machine
 * and only until it expires, so renewed while the hammer runs.
 *
 * When to renew is timed without trusting the machine's clock, which in the
 * discovery image may be anything: a credential's lifetime is measured on the
 * issuer's clock (its `iat` to its expiry), a renewed one is as old as the
 * call that got it, and only the boot credential's age is estimated with the
 * local clock (clamped to its lifetime; a clock far ahead makes one early
 * renewal, after which the timing no longer depends on it).
 */
export class MachineCredential {
  readonly machineId: string;
  readonly partition: string;
  private current: string;
  private expires: Date;
  /** performance.now() at which the current credential is due for renewal. */
  private renewAt = 0;

  constructor(init: { machineId: string; partition: string; secret: string; expiresAt: Date }) {
    this.machineId = init.machineId.toLowerCase();
    this.partition = init.partition;
    this.current = init.secret;
    this.expires = init.expiresAt;
    this.schedule(false);
  }

  /** The current secret: use as a TokenProvider (`() => cred.secret`). */
  get secret(): string {
    return this.current;
  }

  get expiresAt(): Date {
    return this.expires;
  }

  /** Due once two thirds of the lifetime since issue have passed (a third left). */
  private schedule(justIssued: boolean): void {
    const issued = issuedAt(this.current);
    const now = Date.now();
    const lifetime = Math.max(0, this.expires.getTime() - (issued ?? now));
    const age = justIssued ? 0 : Math.min(lifetime, Math.max(0, now - (issued ?? now)));
    this.renewAt = performance.now() + Math.max(0, (2 / 3) * lifetime - age);
  }

  /**
   * Renews through BootService.RenewCredential (with the current secret as
   * the call's token) whenever two thirds of the credential's life since
   * issue have passed, until `signal` aborts. Failures are retried with
   * backoff and logged, never thrown: a hammer whose credential ran out
   * learns it from its own calls (Unauthenticated).
   */
  async keepFresh(boot: Client<typeof BootService>, signal: AbortSignal, log: Log = () => {}): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      await sleep(failures === 0 ? this.renewAt - performance.now() : backoffDelay(failures, RENEW_BACKOFF), signal);
      if (signal.aborted) return;
      try {
        const res = await boot.renewCredential({ partition: this.partition, machineId: this.machineId }, { signal, timeoutMs: RENEW_TIMEOUT_MS });
        if (!res.machineCredential || !res.credentialExpiresAt) throw new Error("the answer has no credential");
        this.current = res.machineCredential;
        this.expires = timestampDate(res.credentialExpiresAt);
        this.schedule(true);
        failures = 0;
        log("machine credential renewed", { machine: this.machineId, expiresAt: this.expires.toISOString() });
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        const ce = ConnectError.from(err);
        log("renewing the machine credential failed, retrying", { machine: this.machineId, code: Code[ce.code], err: ce.rawMessage, expiresAt: this.expires.toISOString() });
      }
    }
  }
}
