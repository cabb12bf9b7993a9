import { create, type DescEnum, fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Args, type Command, Flags } from "@oclif/core";
import * as aFsl from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import * as aImage from "../../gen/metal/admin/v1/image_pb.js";
import * as aPart from "../../gen/metal/admin/v1/partition_pb.js";
import * as aSic from "../../gen/metal/admin/v1/size_image_constraint_pb.js";
import * as aSize from "../../gen/metal/admin/v1/size_pb.js";
import * as aRes from "../../gen/metal/admin/v1/size_reservation_pb.js";
import * as fsl from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import * as image from "../../gen/metal/api/v1/image_pb.js";
import * as part from "../../gen/metal/api/v1/partition_pb.js";
import * as sic from "../../gen/metal/api/v1/size_image_constraint_pb.js";
import * as size from "../../gen/metal/api/v1/size_pb.js";
import * as res from "../../gen/metal/api/v1/size_reservation_pb.js";
import { aliasesOf, allPages, MetalCommand } from "../base.js";
import { bytes, type Column, enumLabel, enumParse, isoTime, labelsOf, renderTable, UsageError } from "../output.js";
import { pickForUpdate, resourceCommands } from "../resource.js";

const lenient = { ignoreUnknownFields: true };
const docString = (doc: JsonObject, key: string) => (typeof doc[key] === "string" ? (doc[key] as string) : undefined);
const labelsFlag = Flags.string({ multiple: true, description: "labels as key=value" });
const parseLabels = (l: string[] | undefined) => (l ? Object.fromEntries(l.map((kv) => [kv.split("=")[0]!, kv.split("=").slice(1).join("=")])) : undefined);
const clean = (o: Record<string, unknown>): JsonObject => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as JsonObject;
const topicAliases = { partition: ["partitions"], size: ["sizes"], image: ["images"], filesystemlayout: ["filesystemlayouts", "fsl"] };

// ---------------------------------------------------------------- partitions

const partitionColumns: Column<part.Partition>[] = [
  { header: "ID", value: (p) => p.id },
  { header: "Name", value: (p) => p.name },
  { header: "Description", value: (p) => p.description },
  { header: "Labels", value: (p) => labelsOf(p.labels), wide: true },
  { header: "Boot Image", value: (p) => p.bootConfig?.imageUrl ?? "", wide: true },
  { header: "DNS", value: (p) => p.dnsServers.join(","), wide: true },
  { header: "NTP", value: (p) => p.ntpServers.join(","), wide: true },
];

const partitions = resourceCommands({
  kind: "partition",
  topic: "partition",
  topicAliases: topicAliases.partition,
  schema: part.PartitionSchema,
  columns: partitionColumns,
  docId: (d) => docString(d, "id"),
  idOf: (p) => p.id,
  get: async (c, id) => (await c.client(part.PartitionService).get({ id })).partition!,
  list: (c) =>
    allPages(async (paging) => {
      const r = await c.client(part.PartitionService).list({ paging });
      return { items: r.partitions, next: r.nextPageToken };
    }),
  createFlags: {
    id: Flags.string({ description: "id of the partition", required: false }),
    name: Flags.string(),
    description: Flags.string(),
    "image-url": Flags.string({ description: "discovery image (initrd) URL" }),
    "kernel-url": Flags.string({ description: "discovery kernel URL" }),
    cmdline: Flags.string({ description: "kernel command line" }),
    "mgmt-service-address": Flags.string(),
    dnsservers: Flags.string({ multiple: true }),
    ntpservers: Flags.string({ multiple: true }),
    labels: labelsFlag,
  },
  createDoc: (f) => {
    if (!f.id) throw new UsageError("--id or -f is required");
    return clean({
      id: f.id,
      name: f.name,
      description: f.description,
      mgmtServiceAddress: f["mgmt-service-address"],
      bootConfig: f["image-url"] || f["kernel-url"] || f.cmdline ? clean({ imageUrl: f["image-url"], kernelUrl: f["kernel-url"], commandLine: f.cmdline }) : undefined,
      dnsServers: f.dnsservers,
      ntpServers: f.ntpservers,
      labels: parseLabels(f.labels as string[] | undefined),
    });
  },
  create: async (c, doc) => (await c.client(aPart.PartitionService).create(fromJson(aPart.PartitionServiceCreateRequestSchema, doc, lenient))).partition!,
  update: async (c, doc, cur, version) =>
    (
      await c
        .client(aPart.PartitionService)
        .update(
          fromJson(
            aPart.PartitionServiceUpdateRequestSchema,
            { id: cur.id, version, ...pickForUpdate(doc, ["name", "description", "bootConfig", "mgmtServiceAddress"], ["dnsServers", "ntpServers", "labels"]) },
            lenient,
          ),
        )
    ).partition!,
  delete: async (c, id) => (await c.client(aPart.PartitionService).delete({ id })).partition!,
});

class PartitionCapacity extends MetalCommand<typeof PartitionCapacity> {
  static override summary = "machines per partition and size: allocated, allocatable, faulty, reservations";
  static override hiddenAliases = aliasesOf("partition:capacity", topicAliases.partition);
  static override flags = {
    partition: Flags.string({ description: "only this partition" }),
    size: Flags.string({ description: "only this size" }),
    project: Flags.string({ description: "count reservations of this project" }),
  };
  async run() {
    const req = { partition: this.flags.partition, size: this.flags.size, project: this.flags.project };
    type Row = { partition: string; s: aPart.SizeCapacity | part.SizeCapacity };
    let rows: Row[];
    try {
      // Operators see which machines are faulty; everybody else gets the counts.
      rows = (await this.client(aPart.PartitionService).capacity(req)).partitions.flatMap((p) => p.sizes.map((s) => ({ partition: p.partition, s })));
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.PermissionDenied)) throw err;
      rows = (await this.client(part.PartitionService).capacity(req)).partitions.flatMap((p) => p.sizes.map((s) => ({ partition: p.partition, s })));
    }
    const columns: Column<Row>[] = [
      { header: "Partition", value: (r) => r.partition },
      { header: "Size", value: (r) => r.s.size },
      { header: "Allocated", value: (r) => `${r.s.allocated}` },
      { header: "Allocatable", value: (r) => `${r.s.allocatable}` },
      { header: "Free", value: (r) => `${r.s.free}` },
      { header: "Unavailable", value: (r) => `${r.s.unavailable}` },
      { header: "Reservations", value: (r) => `${r.s.usedReservations}/${r.s.reservations}` },
      { header: "Total", value: (r) => `${r.s.total}` },
      { header: "Faulty", value: (r) => `${r.s.faulty}` },
      { header: "Phoned Home", value: (r) => `${r.s.phonedHome}`, wide: true },
      { header: "Waiting", value: (r) => `${r.s.waiting}`, wide: true },
      { header: "Other", value: (r) => `${r.s.other}`, wide: true },
      { header: "Faulty Machines", value: (r) => ("faultyMachines" in r.s ? r.s.faultyMachines.join(",") : ""), wide: true },
    ];
    const format = this.format("table");
    const json = (r: Row) => ({ partition: r.partition, ...(toJson(("faultyMachines" in r.s ? aPart.SizeCapacitySchema : part.SizeCapacitySchema) as never, r.s as never) as object) });
    this.printData(rows.map(json), () => renderTable(rows, columns, { wide: format === "wide", headers: !this.global["no-headers"] }));
  }
}

// ---------------------------------------------------------------- sizes

const range = (s: size.Size, t: size.SizeConstraintType, fmt: (n: bigint) => string = String) => {
  const c = s.constraints.filter((x) => x.type === t);
  return c.map((x) => (x.min === x.max ? fmt(x.min) : `${fmt(x.min)} - ${fmt(x.max)}`) + (x.identifier ? ` (${x.identifier})` : "")).join(", ");
};

const sizeColumns: Column<size.Size>[] = [
  { header: "ID", value: (s) => s.id },
  { header: "Name", value: (s) => s.name },
  { header: "Description", value: (s) => s.description },
  { header: "CPU Range", value: (s) => range(s, size.SizeConstraintType.CORES) },
  { header: "Memory Range", value: (s) => range(s, size.SizeConstraintType.MEMORY, bytes) },
  { header: "Storage Range", value: (s) => range(s, size.SizeConstraintType.STORAGE, bytes) },
  { header: "GPU Range", value: (s) => range(s, size.SizeConstraintType.GPU), wide: true },
  { header: "Labels", value: (s) => labelsOf(s.labels), wide: true },
];

const sizes = resourceCommands({
  kind: "size",
  topic: "size",
  topicAliases: topicAliases.size,
  schema: size.SizeSchema,
  columns: sizeColumns,
  docId: (d) => docString(d, "id"),
  idOf: (s) => s.id,
  get: async (c, id) => (await c.client(size.SizeService).get({ id })).size!,
  list: (c) =>
    allPages(async (paging) => {
      const r = await c.client(size.SizeService).list({ paging });
      return { items: r.sizes, next: r.nextPageToken };
    }),
  create: async (c, doc) => (await c.client(aSize.SizeService).create(fromJson(aSize.SizeServiceCreateRequestSchema, doc, lenient))).size!,
  update: async (c, doc, cur, version) =>
    (await c.client(aSize.SizeService).update(fromJson(aSize.SizeServiceUpdateRequestSchema, { id: cur.id, version, ...pickForUpdate(doc, ["name", "description"], ["constraints", "labels"]) }, lenient))).size!,
  delete: async (c, id) => (await c.client(aSize.SizeService).delete({ id })).size!,
});

class SizeSuggest extends MetalCommand<typeof SizeSuggest> {
  static override summary = "suggest size constraints that match a machine's hardware";
  static override hiddenAliases = aliasesOf("size:suggest", topicAliases.size);
  static override args = { machine: Args.string({ required: true, description: "machine id" }) };
  static override flags = { id: Flags.string({ description: "id of the suggested size", default: "suggested" }) };
  async run() {
    const r = await this.client(aSize.SizeService).suggest({ machineId: this.args.machine });
    // As a Size document, so that the output can go straight into `size create -f`.
    this.printOne(size.SizeSchema, create(size.SizeSchema, { id: this.flags.id, name: this.flags.id, constraints: r.constraints }), sizeColumns, "yaml");
  }
}

const reservationColumns: Column<res.SizeReservation>[] = [
  { header: "ID", value: (r) => r.id },
  { header: "Size", value: (r) => r.sizeId },
  { header: "Project", value: (r) => r.project },
  { header: "Partitions", value: (r) => r.partitionIds.join(",") },
  { header: "Amount", value: (r) => String(r.amount) },
  { header: "Name", value: (r) => r.name, wide: true },
  { header: "Description", value: (r) => r.description, wide: true },
  { header: "Labels", value: (r) => labelsOf(r.labels), wide: true },
];

async function listReservations(c: MetalCommand<typeof Command>, f: Record<string, unknown>) {
  return allPages(async (paging) => {
    const r = await c.client(aRes.SizeReservationService).list({ paging, sizeId: f.size as string | undefined, project: f.project as string | undefined, partitionId: f.partition as string | undefined });
    return { items: r.sizeReservations, next: r.nextPageToken };
  });
}

const reservations = resourceCommands({
  kind: "size reservation",
  topic: "size:reservation",
  topicAliases: ["sizes"],
  topicPrefixAliases: ["size:rs", "sizes:rs", "size:reservations"],
  schema: res.SizeReservationSchema,
  columns: reservationColumns,
  docId: (d) => docString(d, "id"),
  idOf: (r) => r.id,
  commonFlags: { project: Flags.string({ description: "project of the reservation (tenants read their own)" }) },
  get: async (c, id, f) => {
    const project = c.project(f.project as string | undefined);
    if (project) {
      try {
        return (await c.client(res.SizeReservationService).get({ id, project })).sizeReservation!;
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
      }
    }
    // Operators have no Get by id alone; the list is small.
    const found = (await listReservations(c, {})).find((r) => r.id === id);
    if (!found) throw new ConnectError(`size reservation "${id}" not found`, Code.NotFound);
    return found;
  },
  listFlags: { size: Flags.string({ description: "only of this size" }), partition: Flags.string({ description: "only in this partition" }) },
  list: async (c, f) => {
    try {
      return await listReservations(c, f);
    } catch (err) {
      const project = c.project(f.project as string | undefined);
      if (!(err instanceof ConnectError && err.code === Code.PermissionDenied) || !project) throw err;
      return allPages(async (paging) => {
        const r = await c.client(res.SizeReservationService).list({ project, paging });
        return { items: r.sizeReservations, next: r.nextPageToken };
      });
    }
  },
  create: async (c, doc) => (await c.client(aRes.SizeReservationService).create(fromJson(aRes.SizeReservationServiceCreateRequestSchema, doc, lenient))).sizeReservation!,
  update: async (c, doc, cur, version) =>
    (
      await c
        .client(aRes.SizeReservationService)
        .update(fromJson(aRes.SizeReservationServiceUpdateRequestSchema, { id: cur.id, version, ...pickForUpdate(doc, ["name", "description", "amount"], ["partitionIds", "labels"]) }, lenient))
    ).sizeReservation!,
  delete: async (c, id) => (await c.client(aRes.SizeReservationService).delete({ id })).sizeReservation!,
});

const constraintColumns: Column<sic.SizeImageConstraint>[] = [
  { header: "Size", value: (s) => s.size },
  {
    header: "Images",
    value: (s) =>
      Object.entries(s.images)
        .map(([os, v]) => `${os} ${v}`)
        .join(", "),
  },
];

const constraints = resourceCommands({
  kind: "size image constraint",
  topic: "size:imageconstraint",
  topicAliases: ["sizes"],
  topicPrefixAliases: ["size:ic", "sizes:ic", "size:imageconstraints"],
  schema: sic.SizeImageConstraintSchema,
  columns: constraintColumns,
  docId: (d) => docString(d, "size"),
  idOf: (s) => s.size,
  get: async (c, id) => (await c.client(aSic.SizeImageConstraintService).get({ size: id })).sizeImageConstraint!,
  list: (c) =>
    allPages(async (paging) => {
      const r = await c.client(aSic.SizeImageConstraintService).list({ paging });
      return { items: r.sizeImageConstraints, next: r.nextPageToken };
    }),
  create: async (c, doc) => (await c.client(aSic.SizeImageConstraintService).create(fromJson(aSic.SizeImageConstraintServiceCreateRequestSchema, doc, lenient))).sizeImageConstraint!,
  update: async (c, doc, cur, version) =>
    (await c.client(aSic.SizeImageConstraintService).update(fromJson(aSic.SizeImageConstraintServiceUpdateRequestSchema, { size: cur.size, version, images: (doc.images ?? {}) as JsonObject }, lenient)))
      .sizeImageConstraint!,
  delete: async (c, id) => (await c.client(aSic.SizeImageConstraintService).delete({ size: id })).sizeImageConstraint!,
});

class ImageConstraintTry extends MetalCommand<typeof ImageConstraintTry> {
  static override summary = "check whether an image may be installed on a size";
  static override hiddenAliases = ["size:ic:try", "sizes:ic:try", "sizes:imageconstraint:try"];
  static override flags = { size: Flags.string({ required: true }), image: Flags.string({ required: true }) };
  async run() {
    const r = await this.client(sic.SizeImageConstraintService).try({ size: this.flags.size, image: this.flags.image });
    this.printData({ image: r.image, constrained: r.constrained }, () => `image "${r.image}" ${r.constrained ? "is allowed by the size's constraint" : "is allowed: the size has no constraint for it"}\n`);
  }
}

// ---------------------------------------------------------------- images

const imageColumns: Column<image.Image>[] = [
  { header: "ID", value: (i) => i.id },
  { header: "Name", value: (i) => i.name },
  { header: "Description", value: (i) => i.description },
  { header: "Features", value: (i) => i.features.map((f) => enumLabel(image.ImageFeatureSchema, f).toLowerCase()).join(",") },
  { header: "Expiration", value: (i) => isoTime(i.expiresAt).slice(0, 10) },
  { header: "Status", value: (i) => enumLabel(image.ImageClassificationSchema, i.classification).toLowerCase() },
  { header: "URL", value: (i) => i.url, wide: true },
  { header: "SHA256", value: (i) => i.sha256, wide: true },
  { header: "Labels", value: (i) => labelsOf(i.labels), wide: true },
];

/** An enum flag's words ("machine", "firewall,machine") as the proto JSON names a document carries. */
const enumNames = (schema: DescEnum, words: string[]) => words.flatMap((w) => w.split(",")).map((w) => schema.values.find((v) => v.number === enumParse(schema, w.trim()))!.name);

const images = resourceCommands({
  kind: "image",
  topic: "image",
  topicAliases: topicAliases.image,
  schema: image.ImageSchema,
  columns: imageColumns,
  docId: (d) => docString(d, "id"),
  idOf: (i) => i.id,
  get: async (c, id) => (await c.client(image.ImageService).get({ id })).image!,
  listFlags: {
    os: Flags.string({ description: "only this OS, e.g. debian" }),
    feature: Flags.string({ description: "machine or firewall" }),
    classification: Flags.string({ description: "preview, supported or deprecated" }),
  },
  list: (c, f) =>
    allPages(async (paging) => {
      const r = await c.client(image.ImageService).list({
        paging,
        os: f.os as string | undefined,
        feature: f.feature ? enumParse(image.ImageFeatureSchema, f.feature as string) : undefined,
        classification: f.classification ? enumParse(image.ImageClassificationSchema, f.classification as string) : undefined,
      });
      return { items: r.images, next: r.nextPageToken };
    }),
  createFlags: {
    id: Flags.string({ description: 'id "<os>-<version>", e.g. debian-12.0.20250101' }),
    url: Flags.string({ description: "where the image is downloaded from (http or https)" }),
    features: Flags.string({ multiple: true, description: "machine and/or firewall (repeat the flag or separate by commas)" }),
    sha256: Flags.string({ description: "SHA-256 of the file at --url (64 hex digits); without it metal-hammer reads <url>.sha256" }),
    name: Flags.string(),
    description: Flags.string(),
    classification: Flags.string({ description: "preview (default), supported or deprecated" }),
    labels: labelsFlag,
  },
  createDoc: (f) => {
    if (!f.id) throw new UsageError("--id or -f is required");
    if (!f.url) throw new UsageError("--url is required");
    return clean({
      id: f.id,
      url: f.url,
      features: f.features ? enumNames(image.ImageFeatureSchema, f.features as string[]) : undefined,
      sha256: f.sha256,
      name: f.name,
      description: f.description,
      classification: f.classification ? enumNames(image.ImageClassificationSchema, [f.classification as string])[0] : undefined,
      labels: parseLabels(f.labels as string[] | undefined),
    });
  },
  create: async (c, doc) => (await c.client(aImage.ImageService).create(fromJson(aImage.ImageServiceCreateRequestSchema, doc, lenient))).image!,
  // A document without sha256 keeps the stored one (like every field it leaves out); `sha256: ""` clears it.
  update: async (c, doc, cur, version) =>
    (
      await c
        .client(aImage.ImageService)
        .update(
          fromJson(
            aImage.ImageServiceUpdateRequestSchema,
            { id: cur.id, version, ...pickForUpdate(doc, ["name", "description", "url", "sha256", "classification", "expiresAt"], ["features", "labels"]) },
            lenient,
          ),
        )
    ).image!,
  delete: async (c, id) => (await c.client(aImage.ImageService).delete({ id })).image!,
});

// ---------------------------------------------------------------- filesystem layouts

const fslColumns: Column<fsl.FilesystemLayout>[] = [
  { header: "ID", value: (l) => l.id },
  { header: "Description", value: (l) => l.description },
  { header: "Filesystems", value: (l) => l.filesystems.map((f) => `${f.path || "-"} ${f.device}`).join(", ") },
  { header: "Sizes", value: (l) => (l.constraints?.sizes ?? []).join(",") },
  {
    header: "Images",
    value: (l) =>
      Object.entries(l.constraints?.images ?? {})
        .map(([os, v]) => `${os} ${v}`)
        .join(", "),
  },
  { header: "Name", value: (l) => l.name, wide: true },
  { header: "Disks", value: (l) => l.disks.map((d) => d.device).join(","), wide: true },
];

const layouts = resourceCommands({
  kind: "filesystem layout",
  topic: "filesystemlayout",
  topicAliases: topicAliases.filesystemlayout,
  schema: fsl.FilesystemLayoutSchema,
  columns: fslColumns,
  docId: (d) => docString(d, "id"),
  idOf: (l) => l.id,
  get: async (c, id) => (await c.client(fsl.FilesystemLayoutService).get({ id })).filesystemLayout!,
  list: (c) =>
    allPages(async (paging) => {
      const r = await c.client(fsl.FilesystemLayoutService).list({ paging });
      return { items: r.filesystemLayouts, next: r.nextPageToken };
    }),
  create: async (c, doc) => (await c.client(aFsl.FilesystemLayoutService).create(fromJson(aFsl.FilesystemLayoutServiceCreateRequestSchema, { filesystemLayout: withoutMeta(doc) }, lenient))).filesystemLayout!,
  // A layout is replaced as a whole; the version travels in its meta.
  update: async (c, doc, cur, version) =>
    (await c.client(aFsl.FilesystemLayoutService).update(fromJson(aFsl.FilesystemLayoutServiceUpdateRequestSchema, { filesystemLayout: { ...withoutMeta(doc), id: cur.id, meta: { version } } }, lenient)))
      .filesystemLayout!,
  delete: async (c, id) => (await c.client(aFsl.FilesystemLayoutService).delete({ id })).filesystemLayout!,
});

function withoutMeta(doc: JsonObject): JsonObject {
  const { meta: _meta, ...rest } = doc;
  return rest;
}

class LayoutTry extends MetalCommand<typeof LayoutTry> {
  static override summary = "show which filesystem layout a size and image would get";
  static override hiddenAliases = aliasesOf("filesystemlayout:try", topicAliases.filesystemlayout);
  static override flags = { size: Flags.string({ required: true }), image: Flags.string({ required: true }) };
  async run() {
    const r = await this.client(fsl.FilesystemLayoutService).try({ size: this.flags.size, image: this.flags.image });
    this.printOne(fsl.FilesystemLayoutSchema, r.filesystemLayout!, fslColumns);
  }
}

class LayoutMatch extends MetalCommand<typeof LayoutMatch> {
  static override summary = "check whether a filesystem layout fits a machine's disks";
  static override hiddenAliases = aliasesOf("filesystemlayout:match", topicAliases.filesystemlayout);
  static override args = { id: Args.string({ required: true, description: "filesystem layout id" }) };
  static override flags = { machine: Flags.string({ required: true, description: "id of a registered machine" }) };
  async run() {
    const r = await this.client(aFsl.FilesystemLayoutService).match({ id: this.args.id, machineId: this.flags.machine });
    this.printData({ fits: r.fits, problems: r.problems }, () =>
      r.fits ? `${this.args.id} fits machine ${this.flags.machine}` : `${this.args.id} does not fit machine ${this.flags.machine}:\n${r.problems.map((p) => `  ${p}`).join("\n")}`,
    );
  }
}

export const CATALOG_COMMANDS: Record<string, typeof Command> = {
  ...partitions,
  "partition:capacity": PartitionCapacity,
  ...sizes,
  "size:suggest": SizeSuggest,
  ...reservations,
  ...constraints,
  "size:imageconstraint:try": ImageConstraintTry,
  ...images,
  ...layouts,
  "filesystemlayout:try": LayoutTry,
  "filesystemlayout:match": LayoutMatch,
};
