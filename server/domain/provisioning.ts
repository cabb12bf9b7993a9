/**
 * The provisioning event state machine of a machine, as a pure function over
 * its event container. The state is not stored: it is the state the newest
 * stored event leads to, so replaying stored events always agrees with it.
 * Behaviour follows the original (metal-api fsm), including its "buffered
 * phoned home" and failed-reclaim rules; see the table tests.
 */

export const EventType = {
  PXE_BOOTING: "PXE Booting",
  PREPARING: "Preparing",
  REGISTERING: "Registering",
  WAITING: "Waiting",
  INSTALLING: "Installing",
  BOOTING_NEW_KERNEL: "Booting New Kernel",
  PHONED_HOME: "Phoned Home",
  PLANNED_REBOOT: "Planned Reboot",
  MACHINE_RECLAIM: "Machine Reclaim",
  ALIVE: "Alive",
  CRASHED: "Crashed",
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export const ALL_EVENT_TYPES: readonly EventType[] = Object.values(EventType);

/** The state after an event; "Initial" before any, "Crashing" after Crashed. */
export type ProvisioningState = Exclude<EventType, "Alive" | "Crashed"> | "Initial" | "Crashing";

export type Liveliness = "Alive" | "Dead" | "Unknown";

export interface ProvisioningEvent {
  type: EventType;
  message: string;
  /** Server receive time: clients' clocks are not trusted. */
  time: Date;
}

export interface EventContainer {
  liveliness: Liveliness;
  /** Newest first, at most HISTORY_LIMIT. */
  events: ProvisioningEvent[];
  lastEventTime: Date | undefined;
  lastErrorEvent: ProvisioningEvent | undefined;
  crashLoop: boolean;
  failedMachineReclaim: boolean;
}

export const HISTORY_LIMIT = 100;
/** Phone-home and liveliness window of the original: 5 minutes. */
export const QUIET_PERIOD_MS = 5 * 60_000;
/** A dead, free machine is reclaimed again after an hour. */
export const RESURRECTION_AFTER_MS = 60 * 60_000;

export const emptyContainer = (): EventContainer => ({
  liveliness: "Unknown",
  events: [],
  lastEventTime: undefined,
  lastErrorEvent: undefined,
  crashLoop: false,
  failedMachineReclaim: false,
});

export function stateOf(c: EventContainer): ProvisioningState {
  const newest = c.events[0];
  if (!newest) return "Initial";
  if (newest.type === EventType.CRASHED) return "Crashing";
  return newest.type as ProvisioningState;
}

const S = EventType;
const BOOTING_STATES: ProvisioningState[] = ["Initial", S.PXE_BOOTING, S.PREPARING, S.REGISTERING, S.WAITING, S.INSTALLING, S.BOOTING_NEW_KERNEL];
const RESTART_STATES: ProvisioningState[] = ["Initial", S.PLANNED_REBOOT, S.MACHINE_RECLAIM, "Crashing"];

/** What applying one event does to the container. */
type Outcome = { append: boolean; touch: boolean; set?: Partial<Pick<EventContainer, "crashLoop" | "failedMachineReclaim" | "lastErrorEvent">> } | "unexpected" | "ignore";

function decide(state: ProvisioningState, e: ProvisioningEvent, c: EventContainer): Outcome {
  const quietFor = c.lastEventTime ? e.time.getTime() - c.lastEventTime.getTime() : Infinity;
  switch (e.type) {
    case S.PXE_BOOTING:
      if (state === S.PXE_BOOTING) return { append: false, touch: true, set: { failedMachineReclaim: false } };
      return RESTART_STATES.includes(state) ? { append: true, touch: true, set: { failedMachineReclaim: false } } : "unexpected";
    case S.PREPARING:
      return [...RESTART_STATES, S.PXE_BOOTING].includes(state) ? { append: true, touch: true, set: { failedMachineReclaim: false } } : "unexpected";
    case S.REGISTERING:
      return state === "Initial" || state === S.PREPARING ? { append: true, touch: true } : "unexpected";
    case S.WAITING:
      return state === "Initial" || state === S.REGISTERING ? { append: true, touch: true } : "unexpected";
    case S.INSTALLING:
      return ["Initial", S.REGISTERING, S.WAITING].includes(state) ? { append: true, touch: true } : "unexpected";
    case S.BOOTING_NEW_KERNEL:
      return state === "Initial" || state === S.INSTALLING ? { append: true, touch: true } : "unexpected";
    case S.PHONED_HOME:
      switch (state) {
        case "Initial":
        case S.BOOTING_NEW_KERNEL:
        case S.PLANNED_REBOOT:
          return { append: true, touch: true, set: { crashLoop: false } };
        case S.PHONED_HOME:
          return { append: false, touch: true };
        case S.MACHINE_RECLAIM:
          // Still phoning home long after being freed: the OS was not stopped.
          return quietFor >= QUIET_PERIOD_MS ? { append: false, touch: true, set: { failedMachineReclaim: true } } : "ignore";
        case S.PXE_BOOTING:
          return quietFor >= QUIET_PERIOD_MS ? { append: false, touch: true } : "ignore";
        case S.PREPARING:
        case S.REGISTERING:
        case S.WAITING:
          // Buffered phone-homes of the previous OS arrive late; only a long silence makes them real.
          return quietFor >= QUIET_PERIOD_MS ? { append: true, touch: true } : "ignore";
        default:
          return "unexpected";
      }
    case S.PLANNED_REBOOT:
    case S.MACHINE_RECLAIM:
      return { append: true, touch: true, set: { crashLoop: false } };
    case S.ALIVE:
      return BOOTING_STATES.includes(state) ? { append: false, touch: true } : "unexpected";
    case S.CRASHED:
      return BOOTING_STATES.includes(state) ? { append: true, touch: true, set: { crashLoop: true, lastErrorEvent: e } } : "unexpected";
  }
}

function withEvent(events: ProvisioningEvent[], e: ProvisioningEvent): ProvisioningEvent[] {
  return [e, ...events].slice(0, HISTORY_LIMIT);
}

/**
 * Applies one event. Events that do not fit the current state are never an
 * error: they are stored with a marker and flagged as the last error, and an
 * out-of-order PXE Booting or Preparing means the machine is crash-looping.
 */
export function applyEvent(c: EventContainer, e: ProvisioningEvent): EventContainer {
  const state = stateOf(c);
  const outcome = decide(state, e, c);
  if (outcome === "ignore") return c;
  if (outcome === "unexpected") {
    const marked = { ...e, message: `[unexpectedly received in state ${state.toLowerCase()}]: ${e.message}` };
    const crash = e.type === S.PXE_BOOTING || e.type === S.PREPARING;
    return {
      ...c,
      liveliness: "Alive",
      lastEventTime: e.time,
      lastErrorEvent: marked,
      crashLoop: crash ? true : c.crashLoop,
      events: e.type === S.ALIVE ? c.events : withEvent(c.events, marked),
    };
  }
  return {
    ...c,
    ...outcome.set,
    liveliness: "Alive",
    lastEventTime: outcome.touch ? e.time : c.lastEventTime,
    events: outcome.append ? withEvent(c.events, e) : c.events,
  };
}

/**
 * Liveliness as the periodic job sees it: silent for more than 5 minutes means
 * Dead for a free machine, Unknown for an allocated one (its owner may have
 * switched phone-home off). No events at all: Unknown.
 */
export function evaluateLiveliness(c: EventContainer, allocated: boolean, now: Date): Liveliness {
  if (!c.lastEventTime) return "Unknown";
  if (now.getTime() - c.lastEventTime.getTime() > QUIET_PERIOD_MS) return allocated ? "Unknown" : "Dead";
  return "Alive";
}

/**
 * Whether a free machine should go through the reclaim flow again: dead for
 * an hour, or still running its OS after being freed. The reclaim records an
 * event, so a failed reclaim is retried at most every quiet period.
 */
export function needsResurrection(c: EventContainer, allocated: boolean, now: Date): boolean {
  if (allocated || !c.lastEventTime) return false;
  const silentFor = now.getTime() - c.lastEventTime.getTime();
  if (c.failedMachineReclaim) return silentFor >= QUIET_PERIOD_MS;
  return c.liveliness === "Dead" && silentFor > RESURRECTION_AFTER_MS;
}
