import type { SizeServiceCreateRequest, SizeServiceSuggestRequest, SizeServiceUpdateRequest } from "../../gen/metal/admin/v1/size_pb.js";
import type { SizeReservationServiceCreateRequest, SizeReservationServiceUpdateRequest } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import type { SizeConstraint } from "../../gen/metal/api/v1/size_pb.js";
import { fromProtoConstraints } from "../convert/size.js";
import { constraintProblems, UNKNOWN_SIZE } from "../domain/size.js";
import { type Validator, validator } from "./validator.js";

function sizeId(v: Validator, path: string, id: string): void {
  v.id(path, id);
  if (id === UNKNOWN_SIZE) v.add(path, `"${UNKNOWN_SIZE}" is reserved for machines that match no size`);
}

function constraints(v: Validator, path: string, cs: readonly SizeConstraint[]): void {
  const tooBig = cs.findIndex((c) => c.min > BigInt(Number.MAX_SAFE_INTEGER) || c.max > BigInt(Number.MAX_SAFE_INTEGER));
  if (tooBig !== -1) {
    v.add(`${path}[${tooBig}]`, "min and max must be below 2^53");
    return;
  }
  for (const p of constraintProblems(path, fromProtoConstraints(cs))) v.add(p.path, p.message);
}

export function validateSizeCreate(req: SizeServiceCreateRequest): void {
  const v = validator();
  sizeId(v, "id", req.id);
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels);
  constraints(v, "constraints", req.constraints);
  v.check();
}

export function validateSizeUpdate(req: SizeServiceUpdateRequest): void {
  const v = validator();
  v.id("id", req.id);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels?.values);
  if (req.constraints) constraints(v, "constraints", req.constraints.values);
  v.check();
}

function partitionIds(v: Validator, ids: readonly string[]): void {
  if (ids.length === 0) v.add("partition_ids", "at least one partition is required");
  v.list("partition_ids", ids, 64, (p, id) => v.id(p, id));
}

export function validateSizeReservationCreate(req: SizeReservationServiceCreateRequest): void {
  const v = validator();
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels);
  v.id("size_id", req.sizeId);
  v.id("project", req.project, { max: 128 });
  partitionIds(v, req.partitionIds);
  if (req.amount < 1) v.add("amount", "must be at least 1");
  v.check();
}

export function validateSizeReservationUpdate(req: SizeReservationServiceUpdateRequest): void {
  const v = validator();
  v.uuid("id", req.id);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("name", req.name, 128).text("description", req.description, 1024).labels("labels", req.labels?.values);
  if (req.partitionIds) partitionIds(v, req.partitionIds.values);
  if (req.amount !== undefined && req.amount < 1) v.add("amount", "must be at least 1");
  v.check();
}

export function validateSizeSuggest(req: SizeServiceSuggestRequest): void {
  validator().uuid("machine_id", req.machineId).check();
}
