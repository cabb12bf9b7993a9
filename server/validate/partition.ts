import type { PartitionServiceCreateRequest, PartitionServiceUpdateRequest } from "../../gen/metal/admin/v1/partition_pb.js";
import type { PartitionBootConfig } from "../../gen/metal/api/v1/partition_pb.js";
import { type Validator, validator } from "./validator.js";

function bootConfig(v: Validator, b: PartitionBootConfig | undefined): void {
  if (!b) return;
  v.url("boot_config.image_url", b.imageUrl);
  v.url("boot_config.kernel_url", b.kernelUrl);
  v.text("boot_config.command_line", b.commandLine, 4096);
}

export function validatePartitionCreate(req: PartitionServiceCreateRequest): void {
  const v = validator();
  v.id("id", req.id)
    .text("name", req.name, 128)
    .text("description", req.description, 1024)
    .hostPort("mgmt_service_address", req.mgmtServiceAddress)
    .list("dns_servers", req.dnsServers, 8, (p, s) => v.ip(p, s))
    .list("ntp_servers", req.ntpServers, 8, (p, s) => v.host(p, s))
    .labels("labels", req.labels);
  bootConfig(v, req.bootConfig);
  v.check();
}

export function validatePartitionUpdate(req: PartitionServiceUpdateRequest): void {
  const v = validator().id("id", req.id);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("name", req.name, 128)
    .text("description", req.description, 1024)
    .hostPort("mgmt_service_address", req.mgmtServiceAddress)
    .list("dns_servers", req.dnsServers?.values, 8, (p, s) => v.ip(p, s))
    .list("ntp_servers", req.ntpServers?.values, 8, (p, s) => v.host(p, s))
    .labels("labels", req.labels?.values);
  bootConfig(v, req.bootConfig);
  v.check();
}

/** The admin and tenant capacity requests have the same fields. */
export function validatePartitionCapacity(req: { partition?: string; size?: string; project?: string }): void {
  const v = validator();
  if (req.partition !== undefined) v.id("partition", req.partition);
  if (req.size !== undefined) v.id("size", req.size);
  if (req.project !== undefined) v.id("project", req.project, { max: 128 });
  v.check();
}
