/**
 * A machine's serial console in the browser: metal.api.v1.ConsoleService's
 * Attach stream rendered by xterm.js, keystrokes and sizes through Input
 * (batched, one call at a time). Who may open which console is the
 * server's decision (docs/console.md#in-the-browser); this shows its answer.
 */
import "@xterm/xterm/css/xterm.css";
import "./serial-console.css";
import type { Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "react";
import type { ConsoleService } from "../../gen/metal/api/v1/console_pb.js";
import { mirrorInlineStyles } from "./csp-styles.js";
import { InputBatcher } from "./input-batcher.js";

export interface SerialConsoleProps {
  /** A client of metal.api.v1.ConsoleService (connect-web), carrying the signed-in token. */
  readonly client: Client<typeof ConsoleService>;
  readonly machineId: string;
  /** The project the machine is allocated to (an operator admin may pass "" for a free machine). */
  readonly project: string;
  /** Told once when the console ended, with the reason shown. */
  readonly onEnded?: (reason: string) => void;
}

type Status = { kind: "connecting" } | { kind: "open" } | { kind: "ended"; reason: string };

/** Before the first measurement: the size of a classic terminal. */
const INITIAL = { columns: 80, rows: 24 };

const reasonOf = (err: unknown) => ConnectError.from(err).rawMessage;

export function SerialConsole({ client, machineId, project, onEnded }: SerialConsoleProps) {
  const screen = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState<Status>({ kind: "connecting" });
  const ended = useRef(onEnded);
  ended.current = onEnded;

  useEffect(() => {
    const host = screen.current;
    if (!host) return;
    const call = new AbortController();
    let over = false;
    const finish = (reason: string) => {
      if (over) return;
      over = true;
      batcher.stop();
      term.options.disableStdin = true;
      setStatus({ kind: "ended", reason });
      ended.current?.(reason);
    };

    const stopMirroring = mirrorInlineStyles(host);
    const term = new Terminal({ cols: INITIAL.columns, rows: INITIAL.rows, cursorBlink: true, scrollback: 5000, fontFamily: "ui-monospace, Menlo, Consolas, monospace" });
    term.open(host);
    let sessionId = "";
    let inputFailure: string | undefined;
    const batcher = new InputBatcher(
      (input) => client.input({ sessionId, project, data: input.data, resize: input.resize }, { signal: call.signal }),
      (err) => {
        if (call.signal.aborted) return;
        // The session ended on the server: the Attach stream's last message says why, better than "not found".
        if (ConnectError.from(err).code === Code.NotFound) inputFailure = reasonOf(err);
        else finish(reasonOf(err));
      },
    );
    const encoder = new TextEncoder();
    const typed = term.onData((text) => batcher.type(encoder.encode(text)));
    // Mouse reports in the X10 encoding are bytes, not text.
    const binary = term.onBinary((text) => batcher.type(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)));
    const resized = term.onResize(({ cols, rows }) => batcher.resize(cols, rows));

    // The terminal fills its box: cell size from what xterm drew, the box's size from the layout.
    const fitToBox = () => {
      const drawn = host.querySelector<HTMLElement>(".xterm-screen");
      if (!drawn || drawn.clientWidth === 0 || drawn.clientHeight === 0) return;
      const cellWidth = drawn.clientWidth / term.cols;
      const cellHeight = drawn.clientHeight / term.rows;
      const columns = Math.max(20, Math.floor(host.clientWidth / cellWidth));
      const rows = Math.max(5, Math.floor(host.clientHeight / cellHeight));
      if (columns !== term.cols || rows !== term.rows) term.resize(columns, rows);
    };
    fitToBox();
    const observer = new ResizeObserver(() => fitToBox());
    observer.observe(host);

    void (async () => {
      try {
        for await (const m of client.attach({ machineId, project, columns: term.cols, rows: term.rows }, { signal: call.signal })) {
          switch (m.kind.case) {
            case "opened":
              sessionId = m.kind.value.sessionId;
              setStatus({ kind: "open" });
              batcher.start();
              term.focus();
              break;
            case "data":
              term.write(m.kind.value);
              break;
            case "ended":
              finish(m.kind.value.reason);
              break;
          }
        }
        finish(inputFailure ?? "the server closed the console");
      } catch (err) {
        if (!call.signal.aborted) finish(reasonOf(err));
      }
    })();

    return () => {
      // Unmounting (leaving the page) cancels the call, which closes the console on the server.
      over = true;
      call.abort();
      batcher.stop();
      observer.disconnect();
      typed.dispose();
      binary.dispose();
      resized.dispose();
      term.dispose();
      stopMirroring();
    };
  }, [client, machineId, project]);

  return (
    <div className="serial-console">
      <div ref={screen} className="serial-console-screen" data-testid="serial-console-screen" />
      {status.kind === "connecting" && <p className="serial-console-status">connecting to the console of {machineId}…</p>}
      {status.kind === "ended" && (
        <p className="serial-console-status ended" role="status">
          console ended: {status.reason}
        </p>
      )}
    </div>
  );
}
