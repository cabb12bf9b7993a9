#!/usr/bin/env node
// Lists the partitions, then allocates a machine for a project: plain JavaScript
// on plain node, with nothing but the client package (docs/clients.md).
//
//   METAL_URL=http://127.0.0.1:8080 METAL_TOKEN=<a project editor's token> node allocate.mjs
//
// METAL_PROJECT, METAL_PARTITION, METAL_SIZE and METAL_IMAGE choose what to
// allocate; without them: the token's first project, the first partition, the
// first size and debian-12.
import { Code, ConnectError, createMetalClient } from "metal/client";

const metal = createMetalClient({
  baseUrl: process.env.METAL_URL ?? "http://127.0.0.1:8080",
  token: process.env.METAL_TOKEN,
});

try {
  const { partitions } = await metal.api.partition.list({});
  for (const p of partitions) console.log(`partition ${p.id}\t${p.name || "-"}`);

  // Who the token is: its project roles name the projects it may allocate for.
  const { user } = await metal.api.user.get({});
  const project = process.env.METAL_PROJECT ?? Object.keys(user?.token?.roles?.projectRoles ?? {})[0];
  const partition = process.env.METAL_PARTITION ?? partitions[0]?.id;
  if (!project || !partition) throw new Error("no project or partition to allocate in: set METAL_PROJECT and METAL_PARTITION");
  const size = process.env.METAL_SIZE ?? (await metal.api.size.list({})).sizes[0]?.id;

  // The first network of a machine is its project's private network in the partition.
  const { networks } = await metal.api.network.list({ project });
  const primary = networks.find((n) => n.project === project && n.partition === partition);
  if (!primary) throw new Error(`project ${project} has no network in partition ${partition}`);

  const { machine } = await metal.api.machine.create({
    project,
    partition,
    size,
    image: process.env.METAL_IMAGE ?? "debian-12",
    hostname: "from-a-script",
    networks: [primary.id],
  });
  console.log(`allocated ${machine?.id} in ${partition} for ${project}`);
} catch (err) {
  // Every failure of a call is a ConnectError with a code (NotFound, PermissionDenied, ...).
  if (err instanceof ConnectError) console.error(`metal: ${Code[err.code]}: ${err.rawMessage}`);
  else console.error(`metal: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
}
