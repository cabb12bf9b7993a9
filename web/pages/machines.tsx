/**
 * The machine table, live through the machine Watch: the same columns and
 * status markers as `metalctl machine list`. Rows are plain table rows,
 * memoized by their text: a change re-renders its row only.
 */
import { memo, useEffect, useState, useSyncExternalStore } from "react";
import type { PageProps } from "../app.js";
import { machineColumns } from "../format.js";
import type { MachineWatch } from "../machine-watch.js";
import { type RowView, rowView, sameRow } from "../row-view.js";
import { canEdit } from "../session.js";
import { sortedMachines } from "../watch-state.js";
import { AllocateForm } from "./allocate.js";
import "../machines.css";

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

const MachineRow = memo(function MachineRow({ view }: { view: RowView }) {
  const [id, status, ...rest] = view.cells;
  return (
    <tr data-id={view.id}>
      <td>
        <a href={`#/machines/${encodeURIComponent(view.id)}`}>{id}</a>
      </td>
      <td className="status" title={view.title}>
        {status}
      </td>
      {rest.map((text, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: the columns are fixed, the index is the column
        <td key={i}>{text}</td>
      ))}
    </tr>
  );
}, sameRow);

/**
 * Rows per <tbody>. The browser skips a whole group while it is off screen (machines.css, content-visibility), so
 * showing 1,000 machines lays out a few groups instead of 1,000 rows; a table may have any number of bodies.
 */
export const ROWS_PER_GROUP = 40;

function MachineTable({ rows }: { rows: readonly RowView[] }) {
  const groups: RowView[][] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_GROUP) groups.push(rows.slice(i, i + ROWS_PER_GROUP));
  return (
    <table className="machines">
      <thead>
        <tr>
          {machineColumns.map((c, i) => (
            <th key={c.header || `col${i}`}>{c.header}</th>
          ))}
        </tr>
      </thead>
      {groups.map((group, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: a group is a position in the table, not a machine
        <tbody key={i} className={group.length < ROWS_PER_GROUP ? "partial" : undefined}>
          {group.map((v) => (
            <MachineRow key={v.id} view={v} />
          ))}
        </tbody>
      ))}
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
/**
 * Performance mark of the frame that first shows the full table, taken before the browser styles, lays out and
 * paints it: what MARK_SHOWN meant until 2026-12-05 (test/web/load-timings.ts compares older builds by it).
 */
export const MARK_FRAME = "metal:machines-frame";
let marked = false;

/**
 * Marks, once per page load, when the first live table is on screen. An animation frame callback runs before
 * that frame's style, layout and paint (about 0.1-0.3 s for 1,000 rows): the task queued from it runs after them.
 */
function useMarkShown(live: boolean, rows: number) {
  useEffect(() => {
    if (marked || !live || rows === 0) return;
    marked = true;
    requestAnimationFrame(() => {
      performance.mark(MARK_FRAME, { detail: { rows } });
      setTimeout(() => performance.mark(MARK_SHOWN, { detail: { rows } }), 0);
    });
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
