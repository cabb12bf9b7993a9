/** Operator views (admin services): switches and their sync status, BMC commands of a machine, machine issues. */
import { useState } from "react";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandSchema, BmcCommandStatusSchema } from "../../gen/metal/admin/v1/machine_pb.js";
import { SwitchService as AdminSwitchService, type Switch, SwitchModeSchema } from "../../gen/metal/admin/v1/switch_pb.js";
import { allPages } from "../api.js";
import type { PageProps } from "../app.js";
import { enumLabel, isoTime, since } from "../format.js";
import { Confirm, ErrorLine, LoadedHeader, type Pending, Table, useLoad } from "../ui.js";
import { sortedMachines } from "../watch-state.js";
import { useWatch } from "./machines.js";

/** As `metalctl switch list` says it: synced, failing since when and why, or never synced. */
export function syncStatus(s: Switch, now = Date.now()): { text: string; ok: boolean } {
  const ok = s.lastSync?.time;
  const bad = s.lastSyncError?.time;
  if (!ok && !bad) return { text: "never synced", ok: false };
  if (bad && (!ok || bad.seconds > ok.seconds)) return { text: `error ${since(bad, now)} ago: ${s.lastSyncError!.error}`, ok: false };
  return { text: `synced ${since(ok, now)} ago`, ok: true };
}

export function SwitchesPage({ session }: PageProps) {
  const data = useLoad(
    () =>
      allPages(async (paging) => {
        const r = await session.api(AdminSwitchService).list({ paging });
        return { items: r.switches, next: r.nextPageToken };
      }),
    [session],
  );
  const now = Date.now();
  return (
    <section>
      <LoadedHeader title="Switches" data={data} />
      <Table
        rows={data.value ?? []}
        rowKey={(s) => s.id}
        empty={data.loading ? "Loading…" : "No switches."}
        columns={[
          ["ID", (s) => s.id],
          ["Partition", (s) => s.partition],
          ["Rack", (s) => s.rack],
          ["OS", (s) => [s.os?.vendor, s.os?.version].filter(Boolean).join(" ")],
          ["Mode", (s) => enumLabel(SwitchModeSchema, s.mode).toLowerCase()],
          [
            "Status",
            (s) => {
              const st = syncStatus(s, now);
              return <span className={st.ok ? "ok" : "bad"}>{st.text}</span>;
            },
          ],
          ["Management IP", (s) => s.managementIp],
          ["Ports", (s) => String(s.nics.length)],
        ]}
      />
    </section>
  );
}

const COMMANDS = BmcCommandSchema.values.filter((v) => v.number !== BmcCommand.UNSPECIFIED);

export function BmcPage({ session, watch, id }: PageProps & { id: string | undefined }) {
  useWatch(watch);
  const machines = watch ? sortedMachines(watch.state).map((m) => m.id) : [];
  const chosen = id ?? "";
  const commands = useLoad(async () => (chosen ? (await session.api(AdminMachineService).commands({ id: chosen })).commands : []), [session, chosen]);
  const [command, setCommand] = useState<BmcCommand>(BmcCommand.POWER_ON);
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const label = (c: BmcCommand) => enumLabel(BmcCommandSchema, c);
  return (
    <section>
      <div className="toolbar">
        <h2>BMC commands</h2>
        <label>
          Machine
          <select aria-label="machine" value={chosen} onChange={(e) => (window.location.hash = `#/bmc/${encodeURIComponent(e.target.value)}`)}>
            <option value="">choose a machine</option>
            {machines.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
        {chosen ? (
          <button type="button" onClick={commands.reload} disabled={commands.loading}>
            Refresh
          </button>
        ) : null}
      </div>
      {chosen && session.operatorWrites ? (
        <div className="buttons">
          <select aria-label="command" value={command} onChange={(e) => setCommand(Number(e.target.value) as BmcCommand)}>
            {COMMANDS.map((v) => (
              <option key={v.number} value={v.number}>
                {label(v.number)}
              </option>
            ))}
          </select>
          <button
            type="button"
            onClick={() =>
              setPending({
                question: `${label(command)} on machine ${chosen}?`,
                confirm: label(command),
                details: <p className="hint">metal-bmc of the machine's partition runs it at the BMC; the list below shows its outcome.</p>,
                run: () => session.api(AdminMachineService).bMCCommand({ id: chosen, command, description: "from the web console" }),
              })
            }
          >
            Send…
          </button>
        </div>
      ) : null}
      <ErrorLine error={commands.error} />
      {chosen ? (
        <Table
          rows={commands.value ?? []}
          rowKey={(c) => c.id}
          empty={commands.loading ? "Loading…" : "No commands for this machine."}
          columns={[
            ["Created", (c) => isoTime(c.createdAt)],
            ["Command", (c) => c.command],
            ["Status", (c) => enumLabel(BmcCommandStatusSchema, c.status)],
            ["Result", (c) => c.result],
            ["Deadline", (c) => isoTime(c.deadline)],
          ]}
        />
      ) : null}
      <Confirm
        pending={pending}
        onDone={(ok) => {
          setPending(undefined);
          if (ok) commands.reload();
        }}
      />
    </section>
  );
}

export function IssuesPage({ session }: PageProps) {
  const data = useLoad(
    () =>
      allPages(async (paging) => {
        const r = await session.api(AdminMachineService).issues({ paging });
        return { items: r.machines, next: r.nextPageToken };
      }),
    [session],
  );
  return (
    <section>
      <LoadedHeader title="Machine issues" data={data} />
      <Table
        rows={data.value ?? []}
        rowKey={(m) => m.machineId}
        empty={data.loading ? "Loading…" : "No machine has an issue."}
        columns={[
          ["Machine", (m) => <a href={`#/machines/${encodeURIComponent(m.machineId)}`}>{m.machineId}</a>],
          ["Issues", (m) => m.issues.join(", ")],
        ]}
      />
    </section>
  );
}
