import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  SwitchPortAdminState,
  SwitchPortMode,
  SwitchPortOperState,
  type SwitchServiceSessionRequest,
  type SwitchServiceSessionResponseSchema,
  type SwitchSyncReport,
} from "../../../gen/metal/infra/v1/switch_pb.js";
import { type FanoutBus, switchTopic } from "../../bus/fanout.js";
import type { DbHandle } from "../../db/handle.js";
import { computeSwitchConfig, type DesiredSwitchConfig, type PortMode } from "../../domain/switch-config.js";
import { failedPrecondition, invalidArgument, notFound } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { switchSessionRepository as sessions, switchAdminRepository } from "../../repositories/switch-repository.js";
import { validator } from "../../validate/validator.js";
import type { ConnectionRegistry } from "../connections.js";
import { DaemonSession } from "../daemon-session.js";
import { createSwitchConfigReader, type SwitchConfigReader } from "./config-reader.js";
import { createSwitchSyncWriter, type SwitchSyncWriter } from "./sync-writer.js";

/** How a session paces itself when metal-core does not say. */
export interface SwitchSessionTiming {
  /** Heartbeat interval of both sides; also how often the generation is re-read in case a bus message was lost. */
  heartbeatMs: number;
  /** Bounds for the interval metal-core asks for in its hello. */
  minHeartbeatMs: number;
  maxHeartbeatMs: number;
}

export const DEFAULT_SWITCH_SESSION_TIMING: SwitchSessionTiming = { heartbeatMs: 10_000, minHeartbeatMs: 50, maxHeartbeatMs: 60_000 };

/** A session silent for this many heartbeat intervals is ended; metal-core reconnects and gets the full state. */
const MISSED_HEARTBEATS = 3;

type Response = MessageInitShape<typeof SwitchServiceSessionResponseSchema>;

export interface SwitchSessionDeps {
  db: DbHandle;
  bus?: FanoutBus;
  connections?: ConnectionRegistry;
  timing?: SwitchSessionTiming;
  log?: Logger;
  /** Shared by all sessions of the replica, so that their reads and reports are batched; if absent, all sessions of this handler share one. */
  configReader?: SwitchConfigReader;
  syncWriter?: SwitchSyncWriter;
}

const MODES: Record<PortMode, SwitchPortMode> = { pxe: SwitchPortMode.PXE, tenant: SwitchPortMode.TENANT, firewall: SwitchPortMode.FIREWALL };

export function toProtoSwitchConfig(c: DesiredSwitchConfig): NonNullable<Response["message"]> {
  return {
    case: "config",
    value: {
      generation: BigInt(c.generation),
      switchId: c.switchId,
      ports: c.ports.map((p) => ({
        name: p.name,
        mode: MODES[p.mode],
        vrf: p.vrf,
        vni: p.vni,
        bgpUnnumbered: p.bgpUnnumbered,
        adminState: p.adminUp ? SwitchPortAdminState.UP : SwitchPortAdminState.DOWN,
        machineId: p.machineId,
        allowedPrefixes: p.allowedPrefixes,
        allowedVnis: p.allowedVnis,
      })),
    },
  };
}

/** The port states a report confirms: the admin state metal-core applied (that is what an operator's toggle asks for). */
function reportedPortStates(r: SwitchSyncReport): Map<string, "up" | "down" | "unknown"> {
  const out = new Map<string, "up" | "down" | "unknown">();
  for (const p of r.ports) {
    if (p.adminState === SwitchPortAdminState.UP) out.set(p.name, "up");
    else if (p.adminState === SwitchPortAdminState.DOWN) out.set(p.name, "down");
    else if (p.operState === SwitchPortOperState.UNKNOWN) out.set(p.name, "unknown");
  }
  return out;
}

/**
 * metal-core's session: level-triggered. On connect the switch gets its full
 * desired config at once; afterwards whenever its generation (the switch
 * row's version) grows — woken by the bus, or found on the periodic re-read
 * if a bus message was lost. Sync reports go to the switch row. A session
 * that falls silent, is replaced by a newer one of the same switch, or whose
 * outbound queue fills up is ended; metal-core reconnects and starts over.
 */
export function createSwitchSession(deps: SwitchSessionDeps) {
  const timing = deps.timing ?? DEFAULT_SWITCH_SESSION_TIMING;
  const readConfig = deps.configReader ?? createSwitchConfigReader(deps.db);
  const writeSync = deps.syncWriter ?? createSwitchSyncWriter(deps.db);
  return async function* session(requests: AsyncIterable<SwitchServiceSessionRequest>, ctx: HandlerContext): AsyncGenerator<Response> {
    const it = requests[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done || first.value.message.case !== "hello") throw invalidArgument("the first message of a session must be a hello");
    const partition = first.value.partition;
    const hello = first.value.message.value;
    validator().id("partition", partition).id("hello.switch_id", hello.switchId).check();
    const id = hello.switchId;
    const asked = hello.heartbeatInterval ? durationMs(hello.heartbeatInterval) : timing.heartbeatMs;
    const heartbeatMs = Math.min(timing.maxHeartbeatMs, Math.max(timing.minHeartbeatMs, asked));

    const s = new DaemonSession<Response>(ctx.signal, {
      capacity: 16,
      stuck: () => new ConnectError(`switch "${id}" does not keep up with its session; it will get the full state when it reconnects`, Code.ResourceExhausted),
    });
    // A publish means a change was committed: the next read takes the inputs at once. The periodic re-read asks for the generation first.
    let poked = true;
    s.listen(deps.bus, switchTopic(id), () => (poked = true));
    s.listenResync(deps.bus, () => (poked = true));
    try {
      const registered = (await switchAdminRepository.find(deps.db, id))?.partitionId;
      if (registered === undefined) throw notFound("switch", id);
      if (registered !== partition) throw failedPrecondition(`switch "${id}" is registered in partition "${registered}", not "${partition}"`);
      s.attach(deps.connections, "switch", id, partition, (why) => new ConnectError(why, Code.Unavailable));

      // Reports are processed one after another, in the order they came; metal-core closing its side ends the session.
      s.read(it, async (msg) => {
        const m = msg.message;
        if (m.case === "sync") await recordSync(writeSync, id, m.value);
      });
      s.every(heartbeatMs, () => {
        s.endIfSilent(MISSED_HEARTBEATS * heartbeatMs, () => new ConnectError(`switch "${id}" sent nothing for ${MISSED_HEARTBEATS} heartbeat intervals`, Code.DeadlineExceeded));
        s.send({ message: { case: "heartbeat", value: {} } });
        s.wake();
      });

      let sent = -1;
      // One pump decides which config to send, so configs never overtake each other.
      void s.pump(async () => {
        const full = poked;
        poked = false;
        if (!full) {
          const g = await sessions.generation(deps.db, id);
          if (g === undefined) return s.end(notFound("switch", id));
          if (g === sent) return;
        }
        const input = await readConfig(id);
        if (!input) return s.end(notFound("switch", id));
        if (input.generation !== sent) {
          sent = input.generation;
          s.send({ message: toProtoSwitchConfig(computeSwitchConfig(input)) });
        }
      });
      // A client that went away needs no error; anything else tells metal-core why (or is masked as Internal), and it reconnects.
      yield* s.outgoing();
    } finally {
      s.close();
      deps.log?.debug({ switch: id }, "switch session ended");
    }
  };
}

async function recordSync(write: SwitchSyncWriter, id: string, r: SwitchSyncReport): Promise<void> {
  const v = validator().text("sync.error", r.error, 4096);
  if (r.ports.length > 512) v.add("sync.ports", "must have at most 512 entries");
  v.check();
  const durationMsValue = r.duration ? Math.max(0, Math.round(durationMs(r.duration))) : 0;
  const sync = { time: new Date().toISOString(), durationMs: durationMsValue, error: r.error, generation: Number(r.generation) };
  await write(id, { sync, failed: r.error !== "", ports: reportedPortStates(r) });
}
