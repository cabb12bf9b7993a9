/**
 * Allocating: a waiting machine of a size in a partition (or one given
 * machine), an image, the project's private network and a hostname. The
 * choices come from the API; the defaults are the first that fit.
 */
import { type FormEvent, useState } from "react";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { type Machine, MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { allPages } from "../api.js";
import type { Session } from "../session.js";
import { Confirm, ErrorLine, type Pending, useLoad } from "../ui.js";

interface Choices {
  partitions: string[];
  sizes: Map<string, string[]>;
  images: string[];
  networks: { id: string; label: string }[];
}

async function loadChoices(session: Session, project: string): Promise<Choices> {
  const [capacity, images, networks] = await Promise.all([
    session.api(PartitionService).capacity({ project }),
    allPages(async (paging) => {
      const r = await session.api(ImageService).list({ paging });
      return { items: r.images, next: r.nextPageToken };
    }),
    allPages(async (paging) => {
      const r = await session.api(NetworkService).list({ project, paging });
      return { items: r.networks, next: r.nextPageToken };
    }),
  ]);
  const sizes = new Map(capacity.partitions.map((p) => [p.partition, p.sizes.map((s) => s.size)]));
  return {
    partitions: [...sizes.keys()].sort(),
    sizes,
    images: images.map((i) => i.id),
    // The project's own private networks first: the first network of an allocation is its primary one.
    networks: networks.filter((n) => n.type === NetworkType.CHILD || n.type === NetworkType.CHILD_SHARED).map((n) => ({ id: n.id, label: n.name ? `${n.name} (${n.id})` : n.id })),
  };
}

export function AllocateForm({ session, project, machine, onDone }: { session: Session; project: string; machine?: Machine; onDone: (allocated: boolean) => void }) {
  const choices = useLoad(() => loadChoices(session, project), [session, project]);
  const [form, setForm] = useState({ partition: "", size: "", image: "", network: "", hostname: "" });
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const c = choices.value;
  const partition = machine?.partition ?? (form.partition || c?.partitions[0] || "");
  const size = machine?.size ?? (form.size || c?.sizes.get(partition)?.[0] || "");
  const image = form.image || c?.images.find((i) => i.startsWith("debian")) || c?.images[0] || "";
  const network = form.network || c?.networks[0]?.id || "";
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const hostname = form.hostname.trim();
    setPending({
      question: machine ? `Allocate machine ${machine.id} to project ${project}?` : `Allocate a ${size} machine in ${partition} to project ${project}?`,
      confirm: "Allocate",
      details: (
        <p className="hint">
          Image {image}, network {network}
          {hostname ? `, hostname ${hostname}` : ""}. It is installed at once.
        </p>
      ),
      run: () =>
        session.api(MachineService).create({
          project,
          partition,
          size,
          image,
          hostname,
          networks: network ? [network] : [],
          machineId: machine?.id,
        }),
    });
  };
  return (
    <form className="panel allocate" onSubmit={submit} aria-label="allocate">
      <h3>{machine ? `Allocate ${machine.id}` : "Allocate a machine"}</h3>
      <ErrorLine error={choices.error} />
      {machine ? null : (
        <>
          <label>
            Partition
            <select name="partition" value={partition} onChange={set("partition")}>
              {c?.partitions.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </label>
          <label>
            Size
            <select name="size" value={size} onChange={set("size")}>
              {c?.sizes.get(partition)?.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        </>
      )}
      <label>
        Image
        <select name="image" value={image} onChange={set("image")}>
          {c?.images.map((i) => (
            <option key={i} value={i}>
              {i}
            </option>
          ))}
        </select>
      </label>
      <label>
        Network
        <select name="network" value={network} onChange={set("network")}>
          {c?.networks.map((n) => (
            <option key={n.id} value={n.id}>
              {n.label}
            </option>
          ))}
        </select>
      </label>
      <label>
        Hostname
        <input name="hostname" value={form.hostname} onChange={set("hostname")} placeholder="web1" />
      </label>
      <div className="buttons">
        <button type="submit" disabled={!c || !image || !partition || !size}>
          Allocate…
        </button>
        <button type="button" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
      <Confirm
        pending={pending}
        onDone={(ok) => {
          setPending(undefined);
          if (ok) onDone(true);
        }}
      />
    </form>
  );
}
