/**
 * One machine: what the table shows, its hardware and allocation, and its
 * provisioning events, live through a Watch of this machine alone. The
 * actions (allocate, free, reinstall, lock) each ask before they run.
 */
import { useEffect, useMemo, useRef, useState } from "react";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { type Machine, MachineService, MachineState, ProvisioningEventTypeSchema } from "../../gen/metal/api/v1/machine_pb.js";
import { allPages } from "../api.js";
import type { PageProps } from "../app.js";
import { enumLabel, isoTime, machineMarkers, stateLabel } from "../format.js";
import { type MachineWatch, startMachineWatch, watchMachine } from "../machine-watch.js";
import { canEdit } from "../session.js";
import { Confirm, type Pending, Table, useLoad } from "../ui.js";
import { AllocateForm } from "./allocate.js";
import { consoleHref, mayOpenConsole } from "./console.js";
import { useNow, useWatch } from "./machines.js";

/**
 * This machine alone and whole while its page is open: the table's Watch sends summaries (no hardware, one
 * event), so the page has a Watch of its own, by id.
 */
function useMachineWatch(session: PageProps["session"], project: string | undefined, id: string): MachineWatch | undefined {
  const key = session.operator ? "*" : project;
  const watch = useMemo(() => (key === undefined ? undefined : startMachineWatch(watchMachine(session.api, key, id))), [session, key, id]);
  useEffect(() => () => watch?.stop(), [watch]);
  return watch;
}

export function MachinePage({ session, project, id }: PageProps & { id: string }) {
  const watch = useMachineWatch(session, project, id);
  useWatch(watch);
  const now = useNow();
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const [allocating, setAllocating] = useState(false);
  const reason = useRef("");
  if (!watch) return <p className="hint">Choose a project (top right) to see its machines.</p>;
  if (!watch.state.live) return <p className="loading">Loading…</p>;
  const m = watch.state.machines.get(id);
  if (!m) return <p className="error">Machine {id} was not found (or is not yours).</p>;
  const a = m.allocation;
  const owner = a?.project;
  const markers = machineMarkers(m, now);
  const free = () =>
    setPending({
      question: `Free machine ${m.id}${a?.hostname ? ` (${a.hostname})` : ""}?`,
      confirm: "Free it",
      details: <p className="hint">Its disks are wiped and its ephemeral IPs released; it waits for the next allocation.</p>,
      run: () => session.api(MachineService).delete({ id: m.id, project: owner! }),
    });
  const lock = (state: MachineState, words: string) => {
    reason.current = "";
    setPending({
      question: `${words} machine ${m.id}?`,
      confirm: words,
      details: <ReasonField onChange={(v) => (reason.current = v)} />,
      run: () => session.api(AdminMachineService).setState({ id: m.id, state, reason: reason.current }),
    });
  };
  return (
    <section>
      <div className="toolbar">
        <h2>
          Machine {m.id} <span title={markers.map((x) => x.meaning).join(", ")}>{markers.map((x) => x.mark).join("")}</span>
        </h2>
        <a href="#/machines">back to the list</a>
      </div>
      <dl className="facts">
        <dt>Partition / rack</dt>
        <dd>
          {m.partition} / {m.rack}
        </dd>
        <dt>Size</dt>
        <dd>{m.size}</dd>
        <dt>State</dt>
        <dd>
          {stateLabel(m)}
          {m.stateReason ? `: ${m.stateReason}` : ""}
        </dd>
        <dt>Waiting</dt>
        <dd>{m.waiting ? "yes" : "no"}</dd>
        <dt>Last event</dt>
        <dd data-testid="last-event">{enumLabel(ProvisioningEventTypeSchema, m.events?.log[0]?.type ?? 0)}</dd>
        {a ? (
          <>
            <dt>Project</dt>
            <dd>{a.project}</dd>
            <dt>Hostname</dt>
            <dd>{a.hostname}</dd>
            <dt>Image</dt>
            <dd>
              {a.image}
              {a.reinstalling ? " (reinstalling)" : a.installed ? "" : " (installing)"}
            </dd>
            <dt>IPs</dt>
            <dd>{a.networks.flatMap((n) => n.ips).join(", ")}</dd>
            <dt>Allocated</dt>
            <dd>
              {isoTime(a.createdAt)} by {a.createdBy}
            </dd>
          </>
        ) : null}
      </dl>
      <div className="buttons">
        {!a && m.waiting && project && canEdit(session, project) ? (
          <button type="button" onClick={() => setAllocating(true)}>
            Allocate…
          </button>
        ) : null}
        {a && canEdit(session, owner) ? (
          <>
            <button type="button" className="danger" onClick={free} disabled={m.state === MachineState.LOCKED} title={m.state === MachineState.LOCKED ? "locked machines cannot be freed" : undefined}>
              Free…
            </button>
            <ReinstallButton session={session} machine={m} onPending={setPending} />
          </>
        ) : null}
        {session.operatorWrites ? (
          m.state === MachineState.LOCKED || m.state === MachineState.TAINTED ? (
            <button type="button" onClick={() => lock(MachineState.AVAILABLE, "Unlock")}>
              Unlock…
            </button>
          ) : (
            <button type="button" onClick={() => lock(MachineState.LOCKED, "Lock")}>
              Lock…
            </button>
          )
        ) : null}
        {mayOpenConsole(session, m) ? <a href={consoleHref(m.id)}>Serial console</a> : null}
        {session.operator ? <a href={`#/bmc/${encodeURIComponent(m.id)}`}>BMC commands</a> : null}
      </div>
      {allocating && project ? <AllocateForm session={session} project={project} machine={m} onDone={() => setAllocating(false)} /> : null}
      <h3>Provisioning events</h3>
      <Table
        rows={m.events?.log ?? []}
        rowKey={(e) => `${e.time?.seconds}.${e.time?.nanos}.${e.type}`}
        empty="No events yet."
        columns={[
          ["Time", (e) => isoTime(e.time)],
          ["Event", (e) => enumLabel(ProvisioningEventTypeSchema, e.type)],
          ["Message", (e) => e.message],
        ]}
      />
      <Confirm pending={pending} onDone={() => setPending(undefined)} />
    </section>
  );
}

function ReasonField({ onChange }: { onChange: (reason: string) => void }) {
  return (
    <label>
      Reason
      <input name="reason" placeholder="why (shown to everyone who looks)" onChange={(e) => onChange(e.target.value)} />
    </label>
  );
}

function ReinstallButton({ session, machine, onPending }: { session: Session; machine: Machine; onPending: (p: Pending) => void }) {
  const images = useLoad(
    () =>
      allPages(async (paging) => {
        const r = await session.api(ImageService).list({ paging });
        return { items: r.images.map((i) => i.id), next: r.nextPageToken };
      }),
    [session],
  );
  const [image, setImage] = useState("");
  const chosen = image || machine.allocation?.image || images.value?.[0] || "";
  return (
    <span className="inline">
      <select aria-label="image to reinstall" value={chosen} onChange={(e) => setImage(e.target.value)}>
        {[...new Set([machine.allocation?.image ?? "", ...(images.value ?? [])])].filter(Boolean).map((i) => (
          <option key={i}>{i}</option>
        ))}
      </select>
      <button
        type="button"
        onClick={() =>
          onPending({
            question: `Reinstall machine ${machine.id} with ${chosen}?`,
            confirm: "Reinstall",
            details: <p className="hint">The disks are wiped and the image installed again; networks, IPs and ASN stay.</p>,
            run: () => session.api(MachineService).reinstall({ id: machine.id, project: machine.allocation!.project, image: chosen }),
          })
        }
      >
        Reinstall…
      </button>
    </span>
  );
}

type Session = PageProps["session"];
