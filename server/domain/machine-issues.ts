import { type EventContainer, EventType } from "./provisioning.js";

export type Severity = "minor" | "major" | "critical";

export interface IssueType {
  id: string;
  severity: Severity;
  description: string;
}

/** The catalogue, as in the original. */
export const ISSUE_TYPES: readonly IssueType[] = [
  { id: "no-partition", severity: "major", description: "the machine is not assigned to a partition" },
  { id: "liveliness-dead", severity: "major", description: "the machine has not sent an event for more than 5 minutes while free" },
  { id: "liveliness-unknown", severity: "major", description: "the machine's liveliness is unknown" },
  { id: "failed-machine-reclaim", severity: "critical", description: "the machine kept running its OS after it was freed" },
  { id: "crashloop", severity: "major", description: "the machine keeps rebooting during provisioning" },
  { id: "last-event-error", severity: "minor", description: "the machine recently sent an unexpected or error event" },
  { id: "bmc-without-mac", severity: "major", description: "the BMC reported no MAC address" },
  { id: "bmc-without-ip", severity: "major", description: "the BMC reported no IP address" },
  { id: "bmc-info-outdated", severity: "major", description: "the BMC has not reported for more than 20 minutes" },
  { id: "bmc-no-distinct-ip", severity: "major", description: "another machine's BMC has the same address" },
  { id: "no-event-container", severity: "major", description: "the machine has never sent an event" },
];

export const BMC_OUTDATED_MS = 20 * 60_000;
export const LAST_ERROR_THRESHOLD_MS = 7 * 24 * 3600_000;

export interface MachineFacts {
  partition: string;
  allocated: boolean;
  events: EventContainer | undefined;
  bmc: { mac: string; address: string; lastUpdated: Date | undefined } | undefined;
  /** Whether another machine reports the same BMC address. */
  bmcAddressShared: boolean;
}

/** The issues of one machine at `now`. */
export function machineIssues(m: MachineFacts, now: Date, lastErrorThresholdMs = LAST_ERROR_THRESHOLD_MS): string[] {
  const issues: string[] = [];
  if (m.partition === "") issues.push("no-partition");
  const c = m.events;
  if (!c) issues.push("no-event-container");
  else {
    if (c.liveliness === "Dead") issues.push("liveliness-dead");
    if (c.liveliness === "Unknown") issues.push("liveliness-unknown");
    const newest = c.events[0]?.type;
    if (c.failedMachineReclaim || (!m.allocated && newest === EventType.PHONED_HOME)) issues.push("failed-machine-reclaim");
    if (c.crashLoop && newest !== EventType.WAITING) issues.push("crashloop");
    if (c.lastErrorEvent && now.getTime() - c.lastErrorEvent.time.getTime() < lastErrorThresholdMs) issues.push("last-event-error");
  }
  if (m.bmc) {
    if (m.bmc.mac === "") issues.push("bmc-without-mac");
    if (m.bmc.address === "") issues.push("bmc-without-ip");
    if (!m.bmc.lastUpdated || now.getTime() - m.bmc.lastUpdated.getTime() > BMC_OUTDATED_MS) issues.push("bmc-info-outdated");
    if (m.bmcAddressShared) issues.push("bmc-no-distinct-ip");
  }
  return issues;
}
