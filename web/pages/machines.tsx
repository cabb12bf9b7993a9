/**
 * The machine table, live through the machine Watch: the same columns and
 * status markers as `metalctl machine list`. Rows are plain table rows,
 * drawn from their text (web/machine-rows.ts): a change redraws its row only.
 */
import { useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore } from "react";
import type { PageProps } from "../app.js";
import { machineColumns } from "../format.js";
import { type DrawnRows, drawRows } from "../machine-rows.js";
import type { MachineWatch } from "../machine-watch.js";
import { type RowView, rowView } from "../row-view.js";
import { canEdit } from "../session.js";
import { sortedMachines } from "../watch-state.js";
import { AllocateForm } from "./allocate.js";

/** Re-renders on every change the watch reports. */
export function useWatch(watch: MachineWatch | undefined): number {
  return useSyncExternalStore(
    (cb) => watch?.subscribe(cb) ?? (() => {}),
    () => watch?.version ?? -1,
  );
}

/** "When" and "Age" count up: the table is re-rendered twice a minute even without changes. */
export function useNow(everyMs = 30_000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

/**
 * The table; its rows are drawn by web/machine-rows.ts, not by React (1,000 rows as one HTML string, then
 * only the rows whose text changed), before the browser paints.
 */
function MachineTable({ rows }: { rows: readonly RowView[] }) {
  const body = useRef<HTMLTableSectionElement>(null);
  const drawn = useRef<DrawnRows>(new Map());
  useLayoutEffect(() => drawRows(body.current!, rows, drawn.current), [rows]);
  return (
    <table className="machines">
      <thead>
        <tr>
          {machineColumns.map((c, i) => (
            <th key={c.header || `col${i}`}>{c.header}</th>
          ))}
        </tr>
      </thead>
      <tbody ref={body} />
    </table>
  );
}

const matchesFilter = (v: RowView, words: string[]) => {
  if (words.length === 0) return true;
  const text = v.cells.join(" ").toLowerCase();
  return words.every((w) => text.includes(w));
};

/** Performance mark of the first full table painted on this page (read by test/web/console-load.ts). */
export const MARK_SHOWN = "metal:machines-shown";
let marked = false;

/** Marks, once per page load, when the first live table is on screen (the frame after React committed it). */
function useMarkShown(live: boolean, rows: number) {
  useEffect(() => {
    if (marked || !live || rows === 0) return;
    marked = true;
    requestAnimationFrame(() => performance.mark(MARK_SHOWN, { detail: { rows } }));
  }, [live, rows]);
}

export function MachinesPage({ session, project, watch }: PageProps) {
  useWatch(watch);
  const now = useNow();
  const [filter, setFilter] = useState("");
  const [allocating, setAllocating] = useState(false);
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const rows = watch?.state.live
    ? sortedMachines(watch.state)
        .map((m) => rowView(m, now))
        .filter((v) => matchesFilter(v, words))
    : [];
  useMarkShown(watch?.state.live ?? false, rows.length);
  if (!watch) return <p className="hint">Choose a project (top right) to see its machines.</p>;
  return (
    <section>
      <div className="toolbar">
        <h2>Machines</h2>
        <span className="count" data-testid="machine-count">
          {watch.state.live ? `${rows.length} of ${watch.state.machines.size}` : "loading…"}
        </span>
        <input type="search" placeholder="filter (e.g. waiting, a rack, a hostname)" value={filter} onChange={(e) => setFilter(e.target.value)} aria-label="filter machines" />
        {project && canEdit(session, project) ? (
          <button type="button" onClick={() => setAllocating(true)}>
            Allocate a machine
          </button>
        ) : null}
      </div>
      {watch.problem ? (
        <p className="error" role="alert">
          {watch.problem}
        </p>
      ) : null}
      {allocating && project ? <AllocateForm session={session} project={project} onDone={() => setAllocating(false)} /> : null}
      {watch.state.live ? rows.length === 0 ? <p className="empty">No machines{project && !session.operator ? ` in project ${project}` : ""}.</p> : <MachineTable rows={rows} /> : null}
    </section>
  );
}
