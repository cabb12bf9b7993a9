import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../client/transport.js";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenants } from "../../gen/masterdata/v1/tenant_pb.js";
import { FilesystemLayoutService as AdminLayouts } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImages } from "../../gen/metal/admin/v1/image_pb.js";
import { NetworkService as AdminNetworks } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeImageConstraintService as AdminConstraints } from "../../gen/metal/admin/v1/size_image_constraint_pb.js";
import { SizeService as AdminSizes } from "../../gen/metal/admin/v1/size_pb.js";
import { SizeReservationService as AdminReservations } from "../../gen/metal/admin/v1/size_reservation_pb.js";
import { SwitchService as AdminSwitches } from "../../gen/metal/admin/v1/switch_pb.js";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { SizeService } from "../../gen/metal/api/v1/size_pb.js";
import { createApp } from "../../server/app.js";
import { ensureAdminToken } from "../../server/auth/admin-token.js";
import { loadConfig } from "../../server/config.js";
import { listen } from "../../server/http/listener.js";
import { createLogger } from "../../server/logger.js";
import { expectCode } from "./expect.js";
import { type PartitionFixture, setUpPartition } from "./partition-fixture.js";
import type { TestServer } from "./server-launch.js";
import { scaled } from "./timeouts.js";

/**
 * The control plane on embedded PGlite (as `npm start` runs it), listening on
 * a free port, with the same client helpers as the PostgreSQL test server.
 */
export async function launchEmbeddedServer(): Promise<{ server: TestServer; stop: () => Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), "metal-pglite-test-"));
  const config = loadConfig({ METAL_LISTEN: "127.0.0.1:0", METAL_DATA_DIR: dataDir, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent" });
  const app = await createApp(config, createLogger(config.logLevel, { pretty: false }));
  const { token: adminToken } = await ensureAdminToken(app.db, app.authority, dataDir);
  const listener = await listen(app.handler, config.listen);
  const transport = (kind: "connect" | "grpc", token?: string): Transport =>
    kind === "connect" ? createTransport({ baseUrl: listener.url, protocol: "connect", token }) : createTransport({ baseUrl: listener.url, token });
  const server: TestServer = {
    app,
    url: listener.url,
    dataDir,
    adminToken,
    console: undefined,
    client: (service, token) => createClient(service, transport("connect", token)),
    grpcClient: (service, token) => createClient(service, transport("grpc", token)),
  };
  const stop = async () => {
    app.endStreams();
    await listener.close(1000);
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  return { server, stop };
}

/** One entity in use: deleting it must be refused with exactly this message, and leave it in place. */
interface Row {
  entity: string;
  remove(): Promise<unknown>;
  message(): string;
  stillThere(): Promise<unknown>;
}

/**
 * The table test of issue 13: every delete of an entity that something still
 * uses is refused with FailedPrecondition naming the users, and changes nothing.
 * Partition p1 (see setUpPartition) with one allocated machine in project
 * "pa", a size reservation and a size-image constraint for s1.
 */
export function describeDeletesInUse(database: string, launch: () => Promise<{ server: TestServer; stop: () => Promise<void> }>): void {
  describe(`deleting what is still in use (${database})`, () => {
    let server: TestServer;
    let stop: () => Promise<void>;
    let fixture: PartitionFixture;
    let machineId: string;
    let reservationId: string;
    const admin = <S extends Parameters<TestServer["client"]>[0]>(service: S) => server.client(service, server.adminToken);

    beforeAll(async () => {
      ({ server, stop } = await launch());
      fixture = await setUpPartition(server);
      const waiting = await fixture.bootMachine("r1");
      const { machine } = await admin(MachineService).create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "web", networks: [fixture.primary.pa] });
      machineId = machine!.id;
      expect(machineId).toBe(waiting.id);
      reservationId = (await admin(AdminReservations).create({ sizeId: "s1", project: "pb", partitionIds: ["p1"], amount: 1 })).sizeReservation!.id;
      await admin(AdminConstraints).create({ size: "s1", images: { debian: "*" } });
    }, scaled(240_000));

    afterAll(async () => {
      fixture?.stopAll();
      await stop?.();
    });

    const rows: Row[] = [
      {
        entity: "size",
        remove: () => admin(AdminSizes).delete({ id: "s1" }),
        message: () => `size "s1" is still used by 1 machine (${machineId}), 1 size reservation (${reservationId}) and 1 size-image constraint (s1); delete them first`,
        stillThere: () => admin(SizeService).get({ id: "s1" }),
      },
      {
        entity: "image",
        remove: () => admin(AdminImages).delete({ id: "debian-12.0.20250101" }),
        message: () => `image "debian-12.0.20250101" is still used by 1 allocated machine (${machineId}); free or reinstall them first`,
        stillThere: () => admin(ImageService).get({ id: "debian-12.0.20250101" }),
      },
      {
        entity: "filesystem layout",
        remove: () => admin(AdminLayouts).delete({ id: "s1-default" }),
        message: () => `filesystem layout "s1-default" is still used by 1 allocated machine (${machineId}); free them first`,
        stillThere: () => admin(FilesystemLayoutService).get({ id: "s1-default" }),
      },
      {
        entity: "partition",
        remove: () => admin(AdminPartitions).delete({ id: "p1" }),
        message: () => {
          const networks = ["super", fixture.primary.pa, fixture.primary.pb].sort().join(", ");
          return `partition "p1" is still used by 1 machine (${machineId}), 4 switches (leaf01, leaf02, leaf03, …), 3 networks (${networks}) and 1 size reservation (${reservationId}); delete them first`;
        },
        stillThere: () => admin(PartitionService).get({ id: "p1" }),
      },
      {
        entity: "network",
        remove: () => admin(AdminNetworks).delete({ id: "super" }),
        message: () => `network "super" still has 2 child network(s)`,
        stillThere: () => admin(AdminNetworks).get({ id: "super" }),
      },
      {
        entity: "switch",
        remove: () => admin(AdminSwitches).delete({ id: "leaf01" }),
        message: () => `switch "leaf01" still has machines connected on swp1; migrate them or delete with force`,
        stillThere: () => admin(AdminSwitches).get({ id: "leaf01" }),
      },
      {
        entity: "project",
        remove: () => admin(MdProjects).delete({ id: "pa" }),
        message: () => `project "pa" still has 1 machine, 1 network, 2 IPs; free or delete them first`,
        stillThere: () => admin(MdProjects).get({ id: "pa" }),
      },
      {
        entity: "tenant",
        remove: () => admin(MdTenants).delete({ id: "t" }),
        message: () => `tenant "t" still owns 2 project(s); delete them first`,
        stillThere: () => admin(MdTenants).get({ id: "t" }),
      },
    ];

    it.each(rows.map((r) => [r.entity, r] as const))("refuses to delete a %s in use, naming what uses it, and keeps it", async (_entity, row) => {
      const before = await row.stillThere();
      const err = await expectCode(row.remove(), Code.FailedPrecondition);
      expect(err.rawMessage).toBe(row.message());
      expect(await row.stillThere()).toEqual(before);
    });
  });
}
