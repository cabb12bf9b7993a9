/**
 * The machine table's body, drawn by the page itself rather than by React:
 * the first 1,000 rows as one HTML string (the browser's parser builds them
 * several times faster than React creates 13,000 elements one by one), and
 * afterwards only the rows whose text changed (row-view.ts `sameRow`),
 * rows that came or went, and rows that moved. React renders the table and
 * its empty <tbody>, and never touches the rows.
 *
 * Every text goes through `escapeHtml`: a machine's fields are the tenant's
 * words (hostname, project, image) and never markup.
 */
import { type RowView, sameRow } from "./row-view.js";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** The cells of a row: the id links to the machine's page, the status markers carry their meaning as a tooltip. */
export function rowCells(v: RowView): string {
  const [id = "", status = "", ...rest] = v.cells;
  return `<td><a href="#/machines/${escapeHtml(encodeURIComponent(v.id))}">${escapeHtml(id)}</a></td><td class="status" title="${escapeHtml(v.title)}">${escapeHtml(status)}</td>${rest.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}`;
}

const rowHtml = (v: RowView) => `<tr data-id="${escapeHtml(v.id)}">${rowCells(v)}</tr>`;

/** What a table body shows: each drawn row's view and element, by machine id. */
export type DrawnRows = Map<string, { view: RowView; tr: HTMLTableRowElement }>;

/** Makes `body` show `rows` in their order, touching only what differs from what `drawn` says it shows. */
export function drawRows(body: HTMLTableSectionElement, rows: readonly RowView[], drawn: DrawnRows): void {
  if (drawn.size === 0 || rows.length === 0) {
    body.innerHTML = rows.map(rowHtml).join("");
    drawn.clear();
    rows.forEach((view, i) => drawn.set(view.id, { view, tr: body.rows[i]! }));
    return;
  }
  const wanted = new Set(rows.map((v) => v.id));
  for (const [id, d] of drawn) {
    if (wanted.has(id)) continue;
    d.tr.remove();
    drawn.delete(id);
  }
  let next = body.firstElementChild;
  for (const view of rows) {
    let d = drawn.get(view.id);
    if (!d) {
      const tr = body.ownerDocument.createElement("tr");
      tr.dataset.id = view.id;
      tr.innerHTML = rowCells(view);
      d = { view, tr };
      drawn.set(view.id, d);
    } else if (!sameRow({ view: d.view }, { view })) {
      d.tr.innerHTML = rowCells(view);
      d.view = view;
    } else {
      d.view = view;
    }
    if (d.tr === next) next = next.nextElementSibling;
    else body.insertBefore(d.tr, next);
  }
}
