import { create } from "@bufbuild/protobuf";
import type { SizeServiceCreateRequest, SizeServiceUpdateRequest } from "../../gen/metal/admin/v1/size_pb.js";
import type { SizeReservationServiceCreateRequest, SizeReservationServiceUpdateRequest } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { type Size, type SizeConstraint, SizeConstraintSchema, SizeSchema } from "../../gen/metal/api/v1/size_pb.js";
import { type SizeReservation, SizeReservationSchema } from "../../gen/metal/api/v1/size_reservation_pb.js";
import type { NewSizeReservationRow, NewSizeRow, SizeReservationRow, SizeRow } from "../db/schema/index.js";
import type { Constraint } from "../domain/size.js";
import { toProtoMeta } from "./meta.js";

export function fromProtoConstraints(cs: readonly SizeConstraint[]): Constraint[] {
  // Amounts beyond 2^53 are refused by validation before this runs.
  return cs.map((c) => ({ type: c.type as number, min: Number(c.min), max: Number(c.max), identifier: c.identifier }));
}

export function toProtoConstraints(cs: readonly Constraint[]): SizeConstraint[] {
  return cs.map((c) => create(SizeConstraintSchema, { type: c.type as number, min: BigInt(c.min), max: BigInt(c.max), identifier: c.identifier }));
}

export function toProtoSize(row: SizeRow): Size {
  return create(SizeSchema, {
    id: row.id,
    name: row.name,
    description: row.description,
    constraints: toProtoConstraints(row.constraints),
    labels: row.labels,
    meta: toProtoMeta(row),
  });
}

export function sizeRowFromCreate(req: SizeServiceCreateRequest): NewSizeRow {
  return { id: req.id, name: req.name, description: req.description, constraints: fromProtoConstraints(req.constraints), labels: req.labels };
}

export function sizePatchFromUpdate(req: SizeServiceUpdateRequest): Partial<NewSizeRow> {
  const patch: Partial<NewSizeRow> = {};
  if (req.name !== undefined) patch.name = req.name;
  if (req.description !== undefined) patch.description = req.description;
  if (req.constraints) patch.constraints = fromProtoConstraints(req.constraints.values);
  if (req.labels) patch.labels = req.labels.values;
  return patch;
}

export function toProtoSizeReservation(row: SizeReservationRow): SizeReservation {
  return create(SizeReservationSchema, {
    id: row.id,
    name: row.name,
    description: row.description,
    sizeId: row.sizeId,
    project: row.project,
    partitionIds: row.partitionIds,
    amount: row.amount,
    labels: row.labels,
    meta: toProtoMeta(row),
  });
}

export function sizeReservationRowFromCreate(id: string, req: SizeReservationServiceCreateRequest): NewSizeReservationRow {
  return {
    id,
    name: req.name,
    description: req.description,
    sizeId: req.sizeId,
    project: req.project,
    partitionIds: req.partitionIds,
    amount: req.amount,
    labels: req.labels,
  };
}

export function sizeReservationPatchFromUpdate(req: SizeReservationServiceUpdateRequest): Partial<NewSizeReservationRow> {
  const patch: Partial<NewSizeReservationRow> = {};
  if (req.name !== undefined) patch.name = req.name;
  if (req.description !== undefined) patch.description = req.description;
  if (req.partitionIds) patch.partitionIds = req.partitionIds.values;
  if (req.amount !== undefined) patch.amount = req.amount;
  if (req.labels) patch.labels = req.labels.values;
  return patch;
}
