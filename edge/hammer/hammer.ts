import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { type BackoffPolicy, backoffPolicy, sleep as pause, retryLoop } from "../../client/backoff.js";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { type MachineAllocation, MachineRole, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { printable } from "../common/text.js";
import type { MachineCredential } from "./credential.js";
import type { Hardware, Inventory } from "./hardware.js";
import { downloadVerified, expectedChecksum, ImageError } from "./image.js";
import { disksToWipe, planStorage } from "./layout.js";

export interface HammerTiming {
  /** An Alive event goes out this often while the machine waits. */
  aliveMs: number;
  /**
   * How long the start-up probe of the Wait stream listens for an existing
   * allocation (the server sends it at once) before taking the machine as free.
   */
  peekMs: number;
  /** Calls are retried after initialMs, doubling up to maxMs (with jitter); a Wait stream that delivered starts over. */
  backoff: BackoffPolicy;
  /** After a crash the machine reboots after this long (the original: 5 s). */
  crashRebootMs: number;
  /** Image downloads that fail on the network are tried this often. */
  downloadAttempts: number;
}

export const DEFAULT_HAMMER_TIMING: HammerTiming = {
  aliveMs: 60_000,
  peekMs: 1_500,
  backoff: backoffPolicy(),
  crashRebootMs: 5_000,
  downloadAttempts: 3,
};

/** Timing as callers give it: any field, and any field of the backoff. */
export type HammerTimingInput = Partial<Omit<HammerTiming, "backoff">> & { backoff?: Partial<BackoffPolicy> };

export interface HammerOptions {
  /**
   * The way to the control plane for BootService, EventService and the reads
   * of images and layouts: on a machine, createFailoverTransport over its
   * leaves' metal-cores with the machine credential as token; tests and the
   * lab may use a partition infra token instead.
   */
  transport: Transport;
  /**
   * The machine's own credential (the transport's token): the hammer checks
   * it is this machine's and keeps it renewed while it runs.
   */
  credential?: MachineCredential;
  partition: string;
  hardware: Hardware;
  version?: string;
  timing?: HammerTimingInput;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** How a run ended: the installed (or previous) OS took over, the machine rebooted after a crash, or the run was stopped. */
export type HammerOutcome = "kexec" | "crashed" | "stopped";

/** Codes that say the server or the network is having a moment, not that the request is wrong. */
const TRANSIENT = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Aborted, Code.ResourceExhausted, Code.Canceled]);

class Stopped extends Error {}

/** Waits `ms`; a stop meanwhile throws Stopped, which ends the run. */
async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await pause(ms, signal);
  if (signal.aborted) throw new Stopped();
}

/** 16 characters from an alphabet without look-alikes, typed on a serial console. */
export function consolePassword(): string {
  const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  return [...randomBytes(16)].map((b) => alphabet[b % alphabet.length]).join("");
}

/**
 * metal-hammer: the agent of the discovery image. Registers the machine,
 * keeps it allocatable on an open Wait stream, and installs what the
 * allocation asks for, reporting each step as a provisioning event.
 */
export class MetalHammer {
  private readonly boot: Client<typeof BootService>;
  private readonly events: Client<typeof EventService>;
  private readonly images: Client<typeof ImageService>;
  private readonly layouts: Client<typeof FilesystemLayoutService>;
  private readonly timing: HammerTiming;
  private readonly log: (msg: string, fields?: Record<string, unknown>) => void;
  private machineId = "";
  /** Steps taken, for logs and tests: "wiped /dev/sda", "registered s1", ... */
  readonly steps: string[] = [];
  /** Wait streams opened while waiting (more than one: it reconnected). */
  waitStreams = 0;

  constructor(private readonly opts: HammerOptions) {
    this.boot = createClient(BootService, opts.transport);
    this.events = createClient(EventService, opts.transport);
    this.images = createClient(ImageService, opts.transport);
    this.layouts = createClient(FilesystemLayoutService, opts.transport);
    this.timing = { ...DEFAULT_HAMMER_TIMING, ...opts.timing, backoff: backoffPolicy(opts.timing?.backoff) };
    this.log = opts.log ?? (() => {});
  }

  /** One boot of the discovery image, until the machine kexecs, reboots after a crash, or `signal` stops it. */
  async run(signal: AbortSignal): Promise<HammerOutcome> {
    const credential = this.opts.credential;
    if (!credential) return this.runOnce(signal);
    // The credential is renewed for exactly as long as the run lasts.
    const renewal = new AbortController();
    const renewing = credential.keepFresh(this.boot, AbortSignal.any([signal, renewal.signal]), this.log);
    try {
      return await this.runOnce(signal);
    } finally {
      renewal.abort();
      await renewing;
    }
  }

  private async runOnce(signal: AbortSignal): Promise<HammerOutcome> {
    const hw = this.opts.hardware;
    let inventory: Inventory;
    try {
      inventory = await hw.inventory();
    } catch (err) {
      // Without the UUID there is no machine to report a crash for.
      this.log("reading the hardware failed", { err: String(err) });
      await sleep(this.timing.crashRebootMs, signal).catch(() => {});
      if (!signal.aborted) await hw.reboot();
      return signal.aborted ? "stopped" : "crashed";
    }
    this.machineId = inventory.uuid.toLowerCase();
    try {
      const credential = this.opts.credential;
      if (credential && credential.machineId !== this.machineId) {
        throw new Error(`the machine credential is for machine ${credential.machineId}, but this machine's UUID is ${this.machineId}: the boot parameters belong to another machine`);
      }
      await this.event(T.PREPARING, `starting metal-hammer version ${this.opts.version ?? "dev"}`, signal);
      await this.event(T.REGISTERING, "start registering", signal);
      // Not cabled to two leaves yet (LLDP still settling, switches not registered) is worth waiting for,
      // and each retry reads the hardware again: a neighbour whose first LLDP frame came after the first
      // read (or a link that came up late) must reach the server, or the retries could never succeed.
      let attempts = 0;
      const reg = await this.retry(
        "register",
        signal,
        async () => {
          if (attempts++ > 0) inventory = await hw.inventory();
          return this.boot.register({ partition: this.opts.partition, machineId: this.machineId, hardware: toProtoHardware(inventory), bios: inventory.bios });
        },
        [Code.FailedPrecondition],
      );
      this.step(`registered ${reg.size} in rack ${reg.rack}`);
      // Registered, but not yet waiting: the probe below is the only moment the machine could be allocated with the old disks.
      const found = await this.peekAllocation(signal);
      if (found?.installed && !found.reinstalling) return await this.holdInstalled(signal);
      if (!found?.reinstalling) {
        // Free (first boot, or back after being freed) or an installation that never finished: nothing on the disks is kept.
        for (const d of disksToWipe("free", inventory.disks)) {
          await hw.wipeDisk(d);
          this.step(`wiped ${d}`);
        }
      }
      const allocation = found ?? (await this.waitForAllocation(signal));
      return await this.install(allocation, inventory, signal);
    } catch (err) {
      if (err instanceof Stopped || signal.aborted) return "stopped";
      return this.crash(err, signal);
    }
  }

  /**
   * An installed machine booted the discovery image without being freed or
   * reinstalled (a disk that failed to boot and fell back to the network, a
   * stray PXE order). The original would wipe and install again; the
   * tenant's disks are left alone instead, the operator is told through a
   * Crashed event, and the hammer stays alive until the BMC resets the
   * machine (a free or a reinstall does).
   */
  private async holdInstalled(signal: AbortSignal): Promise<HammerOutcome> {
    this.step("holding: allocated and installed, disks left alone");
    await this.event(T.CRASHED, "machine is allocated and installed but booted the discovery image; its disks are left alone (free or reinstall it)", signal);
    for (;;) {
      await sleep(this.timing.aliveMs, signal);
      await this.events
        .send({ partition: this.opts.partition, events: [{ machineId: this.machineId, type: T.ALIVE, message: "holding an installed machine" }] })
        .catch((err) => this.log("alive failed", { err: String(err) }));
    }
  }

  private step(s: string) {
    this.steps.push(s);
    this.log(s, { machine: this.machineId });
  }

  private async crash(err: unknown, signal: AbortSignal, opts: { report: boolean } = { report: true }): Promise<HammerOutcome> {
    const message = err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
    this.step(`crashed: ${message}`);
    if (opts.report) await this.event(T.CRASHED, message.slice(0, 1000), signal).catch(() => {});
    try {
      await sleep(this.timing.crashRebootMs, signal);
    } catch {
      return "stopped";
    }
    await this.opts.hardware.reboot();
    return "crashed";
  }

  /** Sends one event; a refused event is logged (the server keeps unexpected ones, marked), never fatal. */
  private async event(type: T, message: string, signal: AbortSignal): Promise<void> {
    const res = await this.retry(`event ${T[type]}`, signal, () => this.events.send({ partition: this.opts.partition, events: [{ machineId: this.machineId, type, message: printable(message) }] }));
    if (res.failed.length > 0) this.log("event refused", { type: T[type], failed: res.failed });
    this.steps.push(`event ${T[type]}`);
  }

  /** Calls `fn` until it succeeds, backing off on transient errors (and on `alsoRetry`); anything else is thrown. */
  private async retry<R>(what: string, signal: AbortSignal, fn: () => Promise<R>, alsoRetry: Code[] = []): Promise<R> {
    const result = await retryLoop(async () => ({ done: await fn() }), {
      policy: this.timing.backoff,
      signal,
      retryable: (err) => {
        const code = ConnectError.from(err).code;
        return TRANSIENT.has(code) || alsoRetry.includes(code);
      },
      onRetry: ({ err, delayMs }) => {
        const ce = ConnectError.from(err);
        this.log(`${what} failed, retrying`, { code: Code[ce.code], err: ce.rawMessage, inMs: Math.round(delayMs) });
      },
    });
    if (signal.aborted) throw new Stopped();
    return result as R;
  }

  /**
   * Whether the machine already has an allocation, before touching a disk:
   * the contract gives the hammer no read of its own machine, but Wait
   * sends an existing allocation at once. Silence for peekMs, a keepalive,
   * or "not in this partition" (a machine never registered) mean free.
   */
  private async peekAllocation(signal: AbortSignal): Promise<MachineAllocation | undefined> {
    return this.retry("wait (probe)", signal, async () => {
      const probe = new AbortController();
      const timer = setTimeout(() => probe.abort(), this.timing.peekMs);
      try {
        for await (const msg of this.boot.wait({ partition: this.opts.partition, machineId: this.machineId }, { signal: AbortSignal.any([signal, probe.signal]) })) {
          return msg.allocation;
        }
        return undefined;
      } catch (err) {
        if (signal.aborted) throw new Stopped();
        if (probe.signal.aborted) return undefined;
        const code = ConnectError.from(err).code;
        if (code === Code.FailedPrecondition || code === Code.NotFound) return undefined;
        throw err;
      } finally {
        clearTimeout(timer);
        probe.abort();
      }
    });
  }

  /** Holds Wait open (reconnecting with backoff) and sends Alive meanwhile, until the allocation arrives. */
  private async waitForAllocation(signal: AbortSignal): Promise<MachineAllocation> {
    await this.event(T.WAITING, "waiting for allocation", signal);
    const alive = setInterval(() => {
      this.events.send({ partition: this.opts.partition, events: [{ machineId: this.machineId, type: T.ALIVE, message: "waiting" }] }).then(
        () => this.steps.push("event ALIVE"),
        (err) => this.log("alive failed", { err: String(err) }),
      );
    }, this.timing.aliveMs);
    try {
      const allocation = await retryLoop<MachineAllocation>(
        async ({ healthy }) => {
          this.waitStreams++;
          for await (const msg of this.boot.wait({ partition: this.opts.partition, machineId: this.machineId }, { signal })) {
            healthy();
            if (msg.allocation) return { done: msg.allocation };
          }
          this.log("wait stream ended without an allocation; waiting again");
        },
        {
          policy: this.timing.backoff,
          signal,
          retryable: (err) => TRANSIENT.has(ConnectError.from(err).code),
          onRetry: ({ err, delayMs }) => {
            if (err === undefined) return;
            const ce = ConnectError.from(err);
            this.log("wait failed, reconnecting", { code: Code[ce.code], err: ce.rawMessage, inMs: Math.round(delayMs) });
          },
        },
      );
      if (!allocation) throw new Stopped();
      this.step(`allocated to ${allocation.project}`);
      return allocation;
    } finally {
      clearInterval(alive);
    }
  }

  /** Downloads the image and checks it against the contract's sha256, or `<url>.sha256` when the contract has none. */
  private async download(url: string, sha256: string, signal: AbortSignal): Promise<string> {
    const file = join(this.opts.hardware.scratchDir(), `image-${this.machineId}`);
    for (let attempt = 1; ; attempt++) {
      try {
        const expected = await expectedChecksum(url, sha256, signal);
        const { bytes } = await downloadVerified(url, expected, file, signal);
        this.step(`downloaded ${url} (${bytes} bytes, sha256 ${expected.slice(0, 12)}…)`);
        return file;
      } catch (err) {
        // A checksum that does not match or an HTTP error is an answer; only the network failing is worth another try.
        if (err instanceof ImageError || signal.aborted || attempt >= this.timing.downloadAttempts) throw err;
        this.log("image download failed, retrying", { err: String(err) });
        await sleep(this.timing.backoff.initialMs * attempt, signal);
      }
    }
  }

  private async install(a: MachineAllocation, inventory: Inventory, signal: AbortSignal): Promise<HammerOutcome> {
    const hw = this.opts.hardware;
    const reinstall = a.reinstalling;
    let primaryDiskWiped = false;
    let imageFile: string | undefined;
    let succeeded = false;
    try {
      await this.event(T.INSTALLING, reinstall ? `start reinstallation of ${a.image}` : `start installation of ${a.image}`, signal);
      const image = (await this.retry("image", signal, () => this.images.get({ id: a.image }))).image;
      if (!image?.url) throw new Error(`image ${a.image} has no URL`);
      const layout = (await this.retry("filesystem layout", signal, () => this.layouts.get({ id: a.filesystemLayout }))).filesystemLayout;
      if (!layout) throw new Error(`filesystem layout ${a.filesystemLayout} not found`);
      const plan = planStorage(layout, inventory, reinstall ? disksToWipe("reinstall", inventory.disks, layout) : undefined);
      // The image is fetched and verified before any disk is touched, so a bad image on a reinstall leaves the old OS bootable.
      imageFile = await this.download(image.url, image.sha256, signal);
      for (const d of plan.wipe) {
        await hw.wipeDisk(d);
        if (d === plan.primaryDisk) primaryDiskWiped = true;
        this.step(`wiped ${d}`);
      }
      for (const d of plan.disks) {
        await hw.partitionDisk(d);
        this.step(`partitioned ${d.device}: ${d.partitions.map((p) => p.device).join(" ")}`);
      }
      for (const r of plan.raid) await hw.createRaid(r);
      for (const vg of plan.volumeGroups) await hw.createVolumeGroup(vg.name, vg.devices);
      for (const lv of plan.volumes) await hw.createLogicalVolume(lv);
      for (const f of plan.format) {
        await hw.format(f);
        this.step(`formatted ${f.device} ${f.format}`);
      }
      await hw.unpackImage(imageFile, plan.filesystems);
      this.step(`unpacked ${a.image}`);
      const password = consolePassword();
      const booted = await hw.runInstallStep({
        machineUuid: this.machineId,
        hostname: a.hostname,
        sshPublicKeys: [...a.sshKeys],
        userData: a.userData,
        consolePassword: password,
        networks: a.networks.map((n) => ({ network: n.network, ips: [...n.ips], vrf: n.vrf, primary: n.primary })),
        dnsServers: [...a.dnsServers],
        ntpServers: [...a.ntpServers],
        role: a.role === MachineRole.FIREWALL ? "firewall" : "machine",
        rootDevice: plan.rootDevice,
      });
      this.step("install step done");
      // InstallationSucceeded voids the machine credential for everything but
      // a repeat of itself: the event goes first, and nothing is sent after it.
      await this.event(T.BOOTING_NEW_KERNEL, "booting into distro kernel", signal);
      // A retry after a lost answer may repeat a call that landed: the server
      // takes the repeat as a no-op, and accepts it with the credential the
      // first one superseded.
      await this.retry("installation succeeded", signal, () =>
        this.boot.installationSucceeded({
          partition: this.opts.partition,
          machineId: this.machineId,
          consolePassword: password,
          bootInfo: { imageId: a.image, primaryDisk: plan.primaryDisk, osPartition: plan.rootDevice, ...booted },
        }),
      );
      succeeded = true;
      this.step("installation succeeded");
      await hw.kexec(booted);
      this.step("kexec");
      return "kexec";
    } catch (err) {
      if (err instanceof Stopped || signal.aborted) return "stopped";
      // Installed and reported, the kexec failed: the server ordered boot-from-disk, so a reboot starts the new OS; the credential is void, nothing to report with.
      if (succeeded) return this.crash(err, signal, { report: false });
      if (!reinstall) return this.crash(err, signal);
      return this.abortReinstall(err, primaryDiskWiped, signal);
    } finally {
      if (imageFile) await rm(imageFile, { force: true });
    }
  }

  /** A failed reinstall: tell the server, and boot the old OS again when its disk is untouched. */
  private async abortReinstall(err: unknown, primaryDiskWiped: boolean, signal: AbortSignal): Promise<HammerOutcome> {
    const message = err instanceof Error ? err.message : String(err);
    this.step(`reinstall failed: ${message}`);
    await this.event(T.CRASHED, `reinstall failed: ${message}`.slice(0, 1000), signal).catch(() => {});
    try {
      // Said before the abort: once the server restores the old OS, this image's credential is void (as after an
      // installation), so nothing can be sent after it.
      if (!primaryDiskWiped) await this.event(T.BOOTING_NEW_KERNEL, "booting the previous OS", signal).catch(() => {});
      const res = await this.retry("abort reinstall", signal, () => this.boot.abortReinstall({ partition: this.opts.partition, machineId: this.machineId, primaryDiskWiped }));
      this.step("reinstall aborted");
      if (!primaryDiskWiped && res.bootInfo?.kernel) {
        await this.opts.hardware.kexec({ kernel: res.bootInfo.kernel, initrd: res.bootInfo.initrd, cmdline: res.bootInfo.cmdline, bootloaderId: res.bootInfo.bootloaderId });
        return "kexec";
      }
    } catch (e) {
      if (e instanceof Stopped || signal.aborted) return "stopped";
      this.log("abort reinstall failed", { err: String(e) });
    }
    try {
      await sleep(this.timing.crashRebootMs, signal);
    } catch {
      return "stopped";
    }
    await this.opts.hardware.reboot();
    return "crashed";
  }
}

function toProtoHardware(inv: Inventory) {
  return {
    memory: inv.memoryBytes,
    cpus: inv.cpus,
    disks: inv.disks.map((d) => ({ name: d.name, size: d.sizeBytes })),
    nics: inv.nics.map((n) => ({ name: n.name, mac: n.mac, neighbors: n.neighbors.map((x) => ({ hostname: x.hostname, port: x.port })) })),
    gpus: inv.gpus,
  };
}
