import { sql } from "drizzle-orm";
import type { DbHandle } from "../db/handle.js";

/**
 * The cluster-wide numbers of `/metrics` (server/metrics/business.ts), read
 * when Prometheus scrapes. Every family is one aggregate statement whose
 * result grows with partitions, sizes, switches and projects holding size
 * reservations, never with machines or commands: a scrape costs the same
 * four statements with ten machines or ten thousand (the BMC queues read
 * only pending commands, see BMC_QUEUES).
 */

/** Machines counted by every dimension the machine families need, in one GROUP BY. */
export interface MachineCountRow {
  /** "unknown" for a bare record that has no partition yet. */
  partition: string;
  /** The matched size; "unknown" when none matched or the machine has not registered. */
  size: string;
  state: "available" | "tainted" | "locked";
  allocated: boolean;
  /** "" for a machine that has sent no event yet. */
  liveliness: "Alive" | "Dead" | "Unknown" | "";
  /** Its metal-hammer holds a Wait stream (the waiting lease lies in the future). */
  waiting: boolean;
  count: number;
}

/** Size reservations of one project in one partition and size, and how many of its machines are there. */
export interface ReservationRow {
  partition: string;
  size: string;
  project: string;
  amount: number;
  used: number;
}

/** A switch's last reported sync and last failed one. */
export interface SwitchSyncRow {
  switch: string;
  partition: string;
  /** Seconds since the last report (any outcome); null when the switch never reported one. */
  lastSyncAgeSeconds: number | null;
  lastSyncDurationMs: number | null;
  lastSyncFailed: boolean;
  /** Seconds since epoch of the last failed sync; null when none failed. */
  lastErrorTime: number | null;
}

/** Pending BMC commands of a partition: how many, and how long the oldest has waited. */
export interface BmcQueueRow {
  partition: string;
  pending: number;
  oldestAgeSeconds: number;
}

export interface BusinessSnapshot {
  machines: MachineCountRow[];
  reservations: ReservationRow[];
  switches: SwitchSyncRow[];
  bmcQueues: BmcQueueRow[];
}

type Rows<T> = { rows: T[] };
const rowsOf = <T>(r: unknown) => (r as Rows<T>).rows;

/**
 * Pending BMC commands per partition. bmc_commands keeps every command ever
 * sent (tenants' power commands included) until its machine is deleted, so
 * the read goes partition by partition through bmc_commands_pending_idx
 * (partition_id, status): it reads the pending rows only, however long the
 * history; a `where status = 'pending'` over the table would read it all.
 * Exported for the test that checks the plan.
 */
export const BMC_QUEUES = sql`
  select p.id as partition, q.pending, q."oldestAgeSeconds"
  from partitions p
  cross join lateral (
    select count(*)::int as pending,
           greatest(0, extract(epoch from now() - min(c.created_at)))::float8 as "oldestAgeSeconds"
    from bmc_commands c
    where c.partition_id = p.id and c.status = 'pending'
  ) q
  where q.pending > 0`;

export const metricsRepository = {
  /**
   * Reads the four families in one read-only snapshot, so that the numbers of
   * one scrape agree with each other (an allocation is either in all of them
   * or in none), each statement bounded by `statementTimeoutMs`.
   */
  async snapshot(db: DbHandle, opts: { statementTimeoutMs?: number } = {}): Promise<BusinessSnapshot> {
    return db.transaction(
      async (txh) => {
        const tx = txh as unknown as DbHandle;
        // A sick database cancels the read instead of piling up one slow read per scrape.
        if (opts.statementTimeoutMs !== undefined) await tx.execute(sql`select set_config('statement_timeout', ${String(Math.max(1, Math.round(opts.statementTimeoutMs)))}, true)`);
        const machines = rowsOf<MachineCountRow>(
          await tx.execute(sql`
            select coalesce(m.partition_id, 'unknown') as partition,
                   coalesce(m.size_id, 'unknown') as size,
                   m.state,
                   m.allocation is not null as allocated,
                   coalesce(e.liveliness, '') as liveliness,
                   coalesce(m.waiting_until > now(), false) as waiting,
                   count(*)::int as count
            from machines m
            left join machine_events e on e.machine_id = m.id
            group by 1, 2, 3, 4, 5, 6`),
        );
        const reservations = rowsOf<ReservationRow>(
          await tx.execute(sql`
            with reserved as (
              select p.partition, r.size_id as size, r.project, sum(r.amount)::int as amount
              from size_reservations r cross join lateral unnest(r.partition_ids) as p(partition)
              group by 1, 2, 3
            )
            select r.partition, r.size, r.project, r.amount,
                   (select count(*)::int from machines m
                    where m.partition_id = r.partition and m.size_id = r.size and m.project = r.project) as used
            from reserved r`),
        );
        const switches = rowsOf<SwitchSyncRow & { lastSyncAgeSeconds: string | number | null; lastErrorTime: string | number | null }>(
          await tx.execute(sql`
            select s.id as "switch", s.partition_id as partition,
                   extract(epoch from now() - (s.last_sync->>'time')::timestamptz)::float8 as "lastSyncAgeSeconds",
                   (s.last_sync->>'durationMs')::float8 as "lastSyncDurationMs",
                   coalesce(s.last_sync->>'error', '') <> '' as "lastSyncFailed",
                   extract(epoch from (s.last_sync_error->>'time')::timestamptz)::float8 as "lastErrorTime"
            from switches s`),
        );
        const bmcQueues = rowsOf<BmcQueueRow>(await tx.execute(BMC_QUEUES));
        return {
          machines: machines.map((r) => ({ ...r, count: Number(r.count) })),
          reservations: reservations.map((r) => ({ ...r, amount: Number(r.amount), used: Number(r.used) })),
          switches: switches.map((r) => ({
            ...r,
            lastSyncAgeSeconds: r.lastSyncAgeSeconds === null ? null : Math.max(0, Number(r.lastSyncAgeSeconds)),
            lastSyncDurationMs: r.lastSyncDurationMs === null ? null : Number(r.lastSyncDurationMs),
            lastErrorTime: r.lastErrorTime === null ? null : Number(r.lastErrorTime),
          })),
          bmcQueues: bmcQueues.map((r) => ({ ...r, pending: Number(r.pending), oldestAgeSeconds: Number(r.oldestAgeSeconds) })),
        };
      },
      { isolationLevel: "repeatable read", accessMode: "read only" },
    );
  },
};
