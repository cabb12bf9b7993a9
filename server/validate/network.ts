import type { NetworkServiceCreateRequest as AdminCreate, NetworkServiceUpdateRequest as AdminUpdate } from "../../gen/metal/admin/v1/network_pb.js";
import type { IPServiceCreateRequest, IPServiceUpdateRequest } from "../../gen/metal/api/v1/ip_pb.js";
import { IpType } from "../../gen/metal/api/v1/ip_pb.js";
import { AddressFamily, type ChildPrefixLength, type NetworkServiceCreateRequest, type NetworkServiceUpdateRequest, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { operatorNetworkProblems, parsePrefixList } from "../domain/network.js";
import type { Problem } from "../domain/size.js";
import { type Validator, validator } from "./validator.js";

const lengths = (l: ChildPrefixLength | undefined) => ({ ipv4: l?.ipv4, ipv6: l?.ipv6 });
const addAll = (v: Validator, problems: Problem[]) => problems.forEach((p) => v.add(p.path, p.message));

export function validateOperatorNetworkCreate(req: AdminCreate): void {
  const v = validator().id("id", req.id).text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels);
  if (req.type !== 0) v.enumValue("type", req.type, NetworkType);
  else v.add("type", "must be set");
  if (req.partition !== "") v.id("partition", req.partition);
  if (req.project !== "") v.id("project", req.project, { max: 128 });
  if (req.vrf !== undefined && (req.vrf < 1 || req.vrf > 131072)) v.add("vrf", "must be between 1 and 131072");
  addAll(
    v,
    operatorNetworkProblems({
      kind: req.type,
      partition: req.partition,
      prefixes: req.prefixes,
      destinationPrefixes: req.destinationPrefixes,
      defaultChildLengths: lengths(req.defaultChildPrefixLength),
      nat: req.nat,
    }),
  );
  v.check();
}

export function validateOperatorNetworkUpdate(req: AdminUpdate): void {
  const v = validator().id("id", req.id).text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels?.values);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  if (req.destinationPrefixes) {
    const problems: Problem[] = [];
    parsePrefixList("destination_prefixes", req.destinationPrefixes.values, problems);
    addAll(v, problems);
  }
  v.check();
}

export function validateChildNetworkCreate(req: NetworkServiceCreateRequest): void {
  const v = validator().id("project", req.project, { max: 128 }).id("partition", req.partition).text("name", req.name, 128);
  v.text("description", req.description, 1024).labels("labels", req.labels);
  if (req.addressFamily !== 0) v.enumValue("address_family", req.addressFamily, AddressFamily);
  const problems: Problem[] = [];
  const wanted = parsePrefixList("prefixes", req.prefixes, problems);
  addAll(v, problems);
  wanted.forEach((p, i) => {
    if (wanted.findIndex((o) => o.family === p.family) !== i) v.add(`prefixes[${i}]`, `a second IPv${p.family} prefix; ask for at most one per family`);
  });
  if (req.prefixes.length > 0 && (req.addressFamily !== 0 || req.length)) v.add("prefixes", "cannot be combined with address_family or length");
  v.check();
}

export function validateChildNetworkUpdate(req: NetworkServiceUpdateRequest): void {
  const v = validator().id("id", req.id, { max: 128 }).id("project", req.project, { max: 128 });
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels?.values);
  if (req.shared === false) v.add("shared", "a shared network cannot be unshared");
  v.check();
}

export function validateIpCreate(req: IPServiceCreateRequest): void {
  const v = validator().id("project", req.project, { max: 128 }).id("network", req.network, { max: 128 });
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels);
  if (req.ip !== undefined) v.ip("ip", req.ip);
  if (req.type !== 0) v.enumValue("type", req.type, IpType);
  if (req.addressFamily !== 0) v.enumValue("address_family", req.addressFamily, AddressFamily);
  if (req.addressFamily !== 0 && req.ip !== undefined) v.add("address_family", "cannot be combined with a given ip");
  v.check();
}

export function validateIpUpdate(req: IPServiceUpdateRequest): void {
  const v = validator().uuid("id", req.id).id("project", req.project, { max: 128 });
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels?.values);
  if (req.type !== 0) v.enumValue("type", req.type, IpType);
  v.check();
}

/** Project-scoped requests naming one entity by id. */
export function validateScopedId(id: string, project: string, opts: { uuid?: boolean } = {}): void {
  const v = validator();
  if (opts.uuid) v.uuid("id", id);
  else v.id("id", id, { max: 128 });
  v.id("project", project, { max: 128 }).check();
}
