import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { BMCServiceSessionRequest, BMCServiceSessionResponseSchema, BmcReport } from "../../../gen/metal/infra/v1/bmc_pb.js";
import { bmcCommandsTopic, type FanoutBus } from "../../bus/fanout.js";
import type { DbHandle } from "../../db/handle.js";
import { sharedBmcAddressProblem } from "../../domain/bmc-command.js";
import { exhausted, failedPrecondition } from "../../errors.js";
import { type BusinessEvents, NO_BUSINESS_EVENTS } from "../../metrics/events.js";
import { bmcCommandRepository as commands, type PendingBmcCommand } from "../../repositories/bmc-command-repository.js";
import { machineRepository as machines } from "../../repositories/machine-repository.js";
import { partitionRepository as partitions } from "../../repositories/partition-repository.js";
import { recordBmcReports } from "../../usecases/machines/bmc-reports.js";
import { type Validator, validator } from "../../validate/validator.js";
import type { ConnectionRegistry } from "../connections.js";
import type { RelayBroker } from "../console/relay-broker.js";
import { DaemonSession } from "../daemon-session.js";

const MAX_REPORTS = 1000;

/** Checks a batch of reports; Report and Session take the same ones. */
export function reportProblems(v: Validator, reports: readonly BmcReport[], path = "reports"): void {
  v.list(
    path,
    reports.map((r) => r.machineId.toLowerCase()),
    MAX_REPORTS,
    (p, id) => v.uuid(`${p}.machine_id`, id),
  );
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
  /** Where the session offers to open console relays (the app's one broker); without it the session opens no consoles. */
  consoles?: RelayBroker;
  /** Counts settled commands for /metrics. */
  events?: BusinessEvents;
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
export function createBmcSession({ db, bus, connections, timing = DEFAULT_BMC_SESSION_TIMING, consoles, events = NO_BUSINESS_EVENTS }: BmcSessionDeps) {
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
    const agent = hello!.agent;
    await partitions.get(db, partition);

    // A full queue means the agent does not read; it gets the current state again when it reconnects.
    const s = new DaemonSession<Response>(ctx.signal, { capacity: 64, stuck: () => exhausted("metal-bmc does not read its session; ending it") });
    try {
      s.attach(connections, "bmc", agent, partition, () => new ConnectError("replaced by a newer session of the same agent", Code.Aborted));
      const heartbeat = (): Response => ({ kind: { case: "heartbeat", value: { sentAtMs: BigInt(Date.now()) } } });

      const sent = new Set<string>();
      const sync = async (): Promise<void> => {
        const pending = await commands.pendingOfPartition(db, partition);
        const still = new Set(pending.map((c) => c.id));
        for (const id of sent) if (!still.has(id)) sent.delete(id);
        const fresh: PendingBmcCommand[] = [];
        for (const c of pending) {
          if (sent.has(c.id)) continue;
          const problem = sharedBmcAddressProblem(c.machineId, c.bmc?.address ?? "", c.sharedWith);
          // Never sent: it fails here, with the reason in its result, as the operator sees it in the command list.
          if (problem) {
            if (await commands.complete(db, partition, c.id, false, `not dispatched: ${problem}`)) events.bmcCommandsSettled(partition, "failed");
          } else fresh.push(c);
        }
        if (fresh.length > 0 && !s.ended) {
          s.send({ kind: { case: "commands", value: { commands: fresh.map(toProtoCommand) } } });
          for (const c of fresh) sent.add(c.id);
        }
      };
      // Console relays go through the session that stands; when it ends, so do the consoles asked through it (at once, not when the generator unwinds).
      if (consoles) {
        s.onEnd(
          consoles.attachAgent(partition, agent, async (relayId, machineId) => {
            const { machine } = await machines.get(db, machineId);
            if (machine.partitionId !== partition) throw failedPrecondition(`machine "${machineId}" is in partition "${machine.partitionId ?? ""}", not "${partition}"`);
            if (!machine.bmc?.address) throw failedPrecondition(`no BMC address is known for machine "${machineId}"`);
            if (s.ended) throw new ConnectError(`the session of metal-bmc "${agent}" ended`, Code.Unavailable);
            const b = machine.bmc;
            s.send({ kind: { case: "openConsole", value: { relayId, machineId, address: b.address, user: b.user ?? "", password: b.password ?? "", interface: b.interface ?? "" } } });
          }),
        );
      }
      // Listening before the first read, so no wake-up can fall in between.
      s.listen(bus, bmcCommandsTopic(partition));
      s.listenResync(bus);
      s.every(timing.heartbeatMs, () => {
        s.endIfSilent(timing.idleMs, () => new ConnectError(`metal-bmc sent nothing for ${timing.idleMs} ms`, Code.DeadlineExceeded));
        s.send(heartbeat());
        s.wake();
      });
      s.read(it, async (msg) => {
        const k = msg.kind;
        switch (k.case) {
          case "heartbeat":
            s.send(heartbeat());
            s.wake();
            break;
          case "reports": {
            const rv = validator();
            reportProblems(rv, k.value.reports, "reports.reports");
            rv.check();
            const out = await recordBmcReports(db, partition, k.value.reports);
            s.send({ kind: { case: "reported", value: out } });
            break;
          }
          case "result":
            validator().uuid("result.command_id", k.value.commandId).text("result.result", k.value.result, 4096).check();
            // False for a command that timed out or was settled before: a late or repeated result changes nothing.
            if (await commands.complete(db, partition, k.value.commandId.toLowerCase(), k.value.ok, k.value.result)) events.bmcCommandsSettled(partition, k.value.ok ? "done" : "failed");
            break;
          case "hello":
            throw new ConnectError("hello: only the first message may be a hello", Code.InvalidArgument);
          default:
            break;
        }
      });
      // Answered at once, so the agent knows the session stands before there is anything to send.
      s.send(heartbeat());
      void s.pump(sync);
      yield* s.outgoing();
    } finally {
      s.close();
    }
  };
}
