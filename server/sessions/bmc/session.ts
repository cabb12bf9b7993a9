import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { BmcReport, BMCServiceSessionRequest, BMCServiceSessionResponseSchema } from "../../../gen/metal/infra/v1/bmc_pb.js";
import { bmcCommandsTopic, type FanoutBus } from "../../bus/fanout.js";
import { relayBrokerOf, type RelayBroker } from "../console/relay-broker.js";
import type { DbHandle } from "../../db/handle.js";
import { sharedBmcAddressProblem } from "../../domain/bmc-command.js";
import { exhausted, failedPrecondition } from "../../errors.js";
import { bmcCommandRepository as commands, type PendingBmcCommand } from "../../repositories/bmc-command-repository.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { Outbox, type ConnectionRegistry } from "../connections.js";
import { validator, type Validator } from "../../validate/validator.js";
import { recordBmcReports } from "../../usecases/machines/bmc-reports.js";

const MAX_REPORTS = 1000;

/** Checks a batch of reports; Report and Session take the same ones. */
export function reportProblems(v: Validator, reports: readonly BmcReport[], path = "reports"): void {
  v.list(path, reports.map((r) => r.machineId.toLowerCase()), MAX_REPORTS, (p, id) => v.uuid(`${p}.machine_id`, id));
  reports.forEach((r, i) => {
    const p = `${path}[${i}]`;
    if (r.address !== "") v.hostPort(`${p}.address`, r.address);
    if (r.mac !== "" && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(r.mac)) v.add(`${p}.mac`, "is not a MAC address");
    v.text(`${p}.user`, r.user, 128).text(`${p}.password`, r.password, 256).text(`${p}.interface`, r.interface, 32);
    v.text(`${p}.version`, r.version, 128).text(`${p}.power_state`, r.powerState, 16).text(`${p}.bios_version`, r.biosVersion, 128);
    if (Object.keys(r.fru).length > 32) v.add(`${p}.fru`, "must have at most 32 entries");
    for (const [k, val] of Object.entries(r.fru)) v.text(`${p}.fru["${k.slice(0, 32)}"]`, val, 256);
  });
}

/** How a session paces itself. */
export interface BmcSessionTiming {
  /** The server sends a heartbeat, and re-reads the pending commands in case a bus message was lost, this often. */
  heartbeatMs: number;
  /** A session whose agent sent nothing for this long is ended; the agent reconnects. */
  idleMs: number;
}

export const DEFAULT_BMC_SESSION_TIMING: BmcSessionTiming = { heartbeatMs: 5_000, idleMs: 30_000 };

type Response = MessageInitShape<typeof BMCServiceSessionResponseSchema>;

export interface BmcSessionDeps {
  db: DbHandle;
  bus?: FanoutBus;
  connections?: ConnectionRegistry;
  timing?: BmcSessionTiming;
  /** Where the session offers to open console relays; the app's broker (see relayBrokerOf) when not given. */
  consoles?: RelayBroker;
}

const toProtoCommand = (c: PendingBmcCommand) => ({
  id: c.id,
  machineId: c.machineId,
  command: c.command,
  address: c.bmc?.address ?? "",
  user: c.bmc?.user ?? "",
  password: c.bmc?.password ?? "",
  interface: c.bmc?.interface ?? "",
  deadlineMs: BigInt(c.deadline.getTime()),
});

/**
 * metal-bmc's session. Commands are level-triggered: on connect the agent
 * gets every pending command of its partition, later each newly pending one
 * (woken by the bus, and re-read on every heartbeat in case a wake-up was
 * lost). Nothing is kept per stream but which commands it has already sent;
 * a reconnecting agent gets all pending ones again and deduplicates by id.
 */
export function createBmcSession({ db, bus, connections, timing = DEFAULT_BMC_SESSION_TIMING, consoles = relayBrokerOf(db) }: BmcSessionDeps) {
  return async function* session(requests: AsyncIterable<BMCServiceSessionRequest>, ctx: HandlerContext): AsyncGenerator<Response> {
    const it = requests[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) return;
    const hello = first.value.kind.case === "hello" ? first.value.kind.value : undefined;
    const v = validator().id("partition", first.value.partition);
    if (!hello) v.add("hello", "the first message must be a hello");
    else v.requiredText("hello.agent", hello.agent, 128).text("hello.version", hello.version, 64);
    v.check();
    const partition = first.value.partition;
    await partitions.get(db, partition);

    const handle = connections?.register("bmc", hello!.agent, partition);
    const outbox = new Outbox<Response>(64);
    let failure: unknown;
    let ended = false;
    let detachConsoles: (() => void) | undefined;
    const end = (err?: unknown) => {
      if (ended) return;
      ended = true;
      failure = err;
      // At once, not when the generator unwinds: the consoles learn that the session (not their relay) ended.
      detachConsoles?.();
      outbox.close();
    };
    const send = (msg: Response) => {
      // A full queue means the agent does not read; it gets the current state again when it reconnects.
      if (!outbox.push(msg)) end(exhausted("metal-bmc does not read its session; ending it"));
    };
    const onAbort = () => end();
    const onReplaced = () => end(new ConnectError("replaced by a newer session of the same agent", Code.Aborted));
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    handle?.signal.addEventListener("abort", onReplaced, { once: true });

    const sent = new Set<string>();
    let syncing = false;
    let again = false;
    const sync = async (): Promise<void> => {
      if (syncing) return void (again = true);
      syncing = true;
      try {
        do {
          again = false;
          const pending = await commands.pendingOfPartition(db, partition);
          const still = new Set(pending.map((c) => c.id));
          for (const id of sent) if (!still.has(id)) sent.delete(id);
          const fresh: PendingBmcCommand[] = [];
          for (const c of pending) {
            if (sent.has(c.id)) continue;
            const problem = sharedBmcAddressProblem(c.machineId, c.bmc?.address ?? "", c.sharedWith);
            // Never sent: it fails here, with the reason in its result, as the operator sees it in the command list.
            if (problem) await commands.complete(db, partition, c.id, false, `not dispatched: ${problem}`);
            else fresh.push(c);
          }
          if (fresh.length > 0 && !ended) {
            send({ kind: { case: "commands", value: { commands: fresh.map(toProtoCommand) } } });
            for (const c of fresh) sent.add(c.id);
          }
        } while (again && !ended);
      } catch (err) {
        end(err);
      } finally {
        syncing = false;
      }
    };
    // Console relays go through the session that stands; when it ends, so do the consoles asked through it.
    detachConsoles = consoles.attachAgent(partition, hello!.agent, async (relayId, machineId) => {
      const { machine } = await machines.get(db, machineId);
      if (machine.partitionId !== partition) throw failedPrecondition(`machine "${machineId}" is in partition "${machine.partitionId ?? ""}", not "${partition}"`);
      if (!machine.bmc?.address) throw failedPrecondition(`no BMC address is known for machine "${machineId}"`);
      if (ended) throw new ConnectError(`the session of metal-bmc "${hello!.agent}" ended`, Code.Unavailable);
      const b = machine.bmc;
      send({ kind: { case: "openConsole", value: { relayId, machineId, address: b.address, user: b.user ?? "", password: b.password ?? "", interface: b.interface ?? "" } } });
    });
    // Subscribed before the first read, so no wake-up can fall in between.
    const unsubscribe = bus?.subscribe(bmcCommandsTopic(partition), () => void sync());

    let lastSeen = Date.now();
    const ticker = setInterval(() => {
      if (Date.now() - lastSeen > timing.idleMs) return end(new ConnectError(`metal-bmc sent nothing for ${timing.idleMs} ms`, Code.DeadlineExceeded));
      send({ kind: { case: "heartbeat", value: { sentAtMs: BigInt(Date.now()) } } });
      void sync();
    }, timing.heartbeatMs);

    void (async () => {
      try {
        for (;;) {
          const n = await it.next();
          if (n.done || ended) break;
          lastSeen = Date.now();
          handle?.touch();
          const k = n.value.kind;
          switch (k.case) {
            case "heartbeat":
              send({ kind: { case: "heartbeat", value: { sentAtMs: BigInt(Date.now()) } } });
              void sync();
              break;
            case "reports": {
              const rv = validator();
              reportProblems(rv, k.value.reports, "reports.reports");
              rv.check();
              const out = await recordBmcReports(db, partition, k.value.reports);
              send({ kind: { case: "reported", value: out } });
              break;
            }
            case "result":
              validator().uuid("result.command_id", k.value.commandId).text("result.result", k.value.result, 4096).check();
              // False for a command that timed out or was settled before: a late or repeated result changes nothing.
              await commands.complete(db, partition, k.value.commandId.toLowerCase(), k.value.ok, k.value.result);
              break;
            case "hello":
              throw new ConnectError("hello: only the first message may be a hello", Code.InvalidArgument);
            default:
              break;
          }
        }
        end();
      } catch (err) {
        end(err);
      }
    })();

    try {
      // Answered at once, so the agent knows the session stands before there is anything to send.
      send({ kind: { case: "heartbeat", value: { sentAtMs: BigInt(Date.now()) } } });
      await sync();
      for await (const msg of outbox) yield msg;
      if (failure && !ctx.signal.aborted) throw failure;
    } finally {
      end();
      clearInterval(ticker);
      detachConsoles?.();
      unsubscribe?.();
      handle?.close();
      ctx.signal.removeEventListener("abort", onAbort);
      handle?.signal.removeEventListener("abort", onReplaced);
    }
  };
}
