/**
 * The machine table's rows as text, apart from React so it can be tested
 * without a browser: what each row shows is computed once per machine object
 * and `now`, and a row is re-rendered only when that text changes.
 */
import type { Machine } from "../gen/metal/api/v1/machine_pb.js";
import { machineColumns, machineMarkers } from "./format.js";

/** What a row shows, computed once per machine object and `now`: the filter reads it too. */
export interface RowView {
  readonly id: string;
  /** Every column's text, in machineColumns' order. */
  readonly cells: readonly string[];
  /** The status markers' meanings, as the status cell's tooltip. */
  readonly title: string;
}

const rowViews = new WeakMap<Machine, { now: number; view: RowView }>();

export function rowView(m: Machine, now: number): RowView {
  const cached = rowViews.get(m);
  if (cached?.now === now) return cached.view;
  const view = {
    id: m.id,
    cells: machineColumns.map((c) => c.value(m, now)),
    title: machineMarkers(m, now)
      .map((x) => x.meaning)
      .join(", "),
  };
  rowViews.set(m, { now, view });
  return view;
}

/**
 * Re-rendered only when its text changes, not whenever its machine object is replaced: a change that touches no
 * column (hardware, networks, a liveliness that stays Alive), a reconnect's new snapshot, or the half-minute `now` tick of a row
 * whose When and Age did not move costs no row render.
 */
export const sameRow = (a: { view: RowView }, b: { view: RowView }) => a.view === b.view || (a.view.title === b.view.title && a.view.cells.every((c, i) => c === b.view.cells[i]));
