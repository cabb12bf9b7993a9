/** The few building blocks every page uses: loading a call's result, showing its error, asking before a change. */
import { type ReactNode, useCallback, useEffect, useState } from "react";
import { describeError } from "./api.js";

export function ErrorLine({ error }: { error: unknown }) {
  if (error === undefined) return null;
  return (
    <p className="error" role="alert">
      {describeError(error)}
    </p>
  );
}

/** A page's heading with a Refresh button for its load, and the load's error under it. */
export function LoadedHeader({ title, data }: { title: ReactNode; data: Loaded<unknown> }) {
  return (
    <>
      <div className="toolbar">
        <h2>{title}</h2>
        <button type="button" onClick={data.reload} disabled={data.loading}>
          Refresh
        </button>
      </div>
      <ErrorLine error={data.error} />
    </>
  );
}

export interface Loaded<T> {
  readonly value: T | undefined;
  readonly error: unknown;
  readonly loading: boolean;
  reload(): void;
}

/** Runs `load` when `deps` change (and on reload()); the latest run wins. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ value?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [round, setRound] = useState(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the caller names what the load depends on.
  useEffect(() => {
    let current = true;
    setState((s) => ({ value: s.value, loading: true }));
    load().then(
      (value) => current && setState({ value, loading: false }),
      (error: unknown) => current && setState({ error, loading: false }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { value: state.value, error: state.error, loading: state.loading, reload };
}

/** A change asked for: what it does, in words, and what runs when the person says yes. */
export interface Pending {
  readonly question: string;
  readonly confirm: string;
  readonly run: () => Promise<unknown>;
  readonly details?: ReactNode;
}

/** Asks before a change; shows the change's error in place, closes on success. */
export function Confirm({ pending, onDone }: { pending: Pending | undefined; onDone: (ok: boolean) => void }) {
  // A new question is a new box: no error or busy state carried over from the last one.
  return pending ? <ConfirmBox pending={pending} onDone={onDone} /> : null;
}

function ConfirmBox({ pending, onDone }: { pending: Pending; onDone: (ok: boolean) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const yes = () => {
    setBusy(true);
    setError(undefined);
    pending.run().then(
      () => onDone(true),
      (err: unknown) => {
        setBusy(false);
        setError(err);
      },
    );
  };
  return (
    <div className="modal" role="dialog" aria-modal="true" aria-label={pending.question}>
      <div className="modal-box">
        <p className="question">{pending.question}</p>
        {pending.details}
        <ErrorLine error={error} />
        <div className="buttons">
          <button type="button" className="danger" disabled={busy} onClick={yes}>
            {busy ? "Working…" : pending.confirm}
          </button>
          <button type="button" disabled={busy} onClick={() => onDone(false)}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}

/** A plain table of rows; cells are text (React escapes it). */
export function Table<T>({ rows, columns, rowKey, empty }: { rows: readonly T[]; columns: readonly [string, (r: T) => ReactNode][]; rowKey: (r: T) => string; empty: string }) {
  if (rows.length === 0) return <p className="empty">{empty}</p>;
  return (
    <table>
      <thead>
        <tr>
          {columns.map(([h]) => (
            <th key={h}>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={rowKey(r)}>
            {columns.map(([h, cell]) => (
              <td key={h}>{cell(r)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
