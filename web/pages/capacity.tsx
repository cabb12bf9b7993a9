/** Partition capacity by size: what can be allocated, what is in use, what is broken. */
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import type { PageProps } from "../app.js";
import { LoadedHeader, Table, useLoad } from "../ui.js";

export function CapacityPage({ session, project }: PageProps) {
  const data = useLoad(() => session.api(PartitionService).capacity({ project }), [session, project]);
  const rows = (data.value?.partitions ?? []).flatMap((p) => p.sizes.map((s) => ({ partition: p.partition, ...s })));
  return (
    <section>
      <LoadedHeader title={`Capacity${project ? ` (reservations of ${project})` : ""}`} data={data} />
      <Table
        rows={rows}
        rowKey={(r) => `${r.partition}/${r.size}`}
        empty={data.loading ? "Loading…" : "No partitions."}
        columns={[
          ["Partition", (r) => r.partition],
          ["Size", (r) => r.size],
          ["Total", (r) => String(r.total)],
          ["Allocated", (r) => String(r.allocated)],
          ["Allocatable", (r) => String(r.allocatable)],
          ["Free", (r) => String(r.free)],
          ["Waiting", (r) => String(r.waiting)],
          ["Phoned home", (r) => String(r.phonedHome)],
          ["Faulty", (r) => String(r.faulty)],
          ["Unavailable", (r) => String(r.unavailable)],
          ["Reservations (used/total)", (r) => (r.reservations ? `${r.usedReservations}/${r.reservations}` : "")],
        ]}
      />
    </section>
  );
}
