/**
 * A machine's serial console (#/machines/ID/console). The terminal
 * (xterm.js, about 87 KiB gzip) is its own chunk, loaded when this page is
 * first opened, so the console's first load does not carry it. Whether the
 * console opens is the server's decision (docs/console.md#in-the-browser):
 * a refused Attach shows the server's reason in place of the terminal.
 */
import { lazy, Suspense, useState } from "react";
import { ConsoleService } from "../../gen/metal/api/v1/console_pb.js";
import type { Machine } from "../../gen/metal/api/v1/machine_pb.js";
import type { PageProps } from "../app.js";
import { canEdit, type Session } from "../session.js";
import { useWatch } from "./machines.js";

const SerialConsole = lazy(() => import("../console/SerialConsole.js").then((m) => ({ default: m.SerialConsole })));

/**
 * Who gets the link (the server checks again on Attach): operator admins for
 * every machine, project editors and owners for their allocated machines.
 */
export const mayOpenConsole = (s: Session, m: Machine) => s.operatorWrites || (m.allocation !== undefined && canEdit(s, m.allocation.project));

export const consoleHref = (id: string) => `#/machines/${encodeURIComponent(id)}/console`;

export function ConsolePage({ session, watch, id }: PageProps & { id: string }) {
  useWatch(watch);
  // The project of the allocation the console was opened for, kept when the machine is freed: the open console then
  // shows why it ended instead of attaching again to a free machine.
  const [project, setProject] = useState<string | undefined>(undefined);
  const current = watch?.state.machines.get(id);
  if (project === undefined && watch?.state.live && current) setProject(current.allocation?.project ?? "");
  if (!watch) return <p className="hint">Choose a project (top right) to see its machines.</p>;
  // Once open, the console stays on the page when the machine leaves the Watch (freed): it says why it ended.
  if (project === undefined) {
    if (!watch.state.live) return <p className="loading">Loading…</p>;
    return <p className="error">Machine {id} was not found (or is not yours).</p>;
  }
  const hostname = current?.allocation?.hostname;
  return (
    <section>
      <div className="toolbar">
        <h2>
          Serial console of {id}
          {hostname ? ` (${hostname})` : ""}
        </h2>
        <a href={`#/machines/${encodeURIComponent(id)}`}>back to the machine</a>
      </div>
      <Suspense fallback={<p className="loading">Loading the terminal…</p>}>
        <SerialConsole client={session.api(ConsoleService)} machineId={id} project={project} />
      </Suspense>
    </section>
  );
}
