/** The project's networks and IPs (tenant services: operators choose a project first). */
import { IPService, IpTypeSchema } from "../../gen/metal/api/v1/ip_pb.js";
import { NetworkService, NetworkTypeSchema } from "../../gen/metal/api/v1/network_pb.js";
import { allPages } from "../api.js";
import type { PageProps } from "../app.js";
import { enumLabel } from "../format.js";
import { LoadedHeader, Table, useLoad } from "../ui.js";

export function NetworksPage({ session, project }: PageProps) {
  const data = useLoad(async () => {
    if (!project) return undefined;
    const [networks, ips] = await Promise.all([
      allPages(async (paging) => {
        const r = await session.api(NetworkService).list({ project, paging });
        return { items: r.networks, next: r.nextPageToken };
      }),
      allPages(async (paging) => {
        const r = await session.api(IPService).list({ project, paging });
        return { items: r.ips, next: r.nextPageToken };
      }),
    ]);
    return { networks, ips };
  }, [session, project]);
  if (!project) return <p className="hint">Choose a project (top right) to see its networks and IPs.</p>;
  return (
    <section>
      <LoadedHeader title={`Networks of ${project}`} data={data} />
      <Table
        rows={data.value?.networks ?? []}
        rowKey={(n) => n.id}
        empty={data.loading ? "Loading…" : "No networks."}
        columns={[
          ["ID", (n) => n.id],
          ["Name", (n) => n.name],
          ["Type", (n) => enumLabel(NetworkTypeSchema, n.type)],
          ["Partition", (n) => n.partition],
          ["Prefixes", (n) => n.prefixes.join(", ")],
          ["VRF", (n) => (n.vrf ? String(n.vrf) : "")],
          ["NAT", (n) => (n.nat ? "yes" : "")],
        ]}
      />
      <h2>IPs of {project}</h2>
      <Table
        rows={data.value?.ips ?? []}
        rowKey={(i) => i.id}
        empty={data.loading ? "Loading…" : "No IPs."}
        columns={[
          ["IP", (i) => i.ip],
          ["Name", (i) => i.name],
          ["Type", (i) => enumLabel(IpTypeSchema, i.type)],
          ["Network", (i) => i.network],
          ["Machine", (i) => (i.machineId ? <a href={`#/machines/${encodeURIComponent(i.machineId)}`}>{i.machineId}</a> : "")],
        ]}
      />
    </section>
  );
}
