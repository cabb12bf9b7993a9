import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { SizeService as AdminSizeService } from "../../gen/metal/admin/v1/size_pb.js";
import { TokenService as AdminTokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { AdminRole, ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { SizeConstraintType as C } from "../../gen/metal/api/v1/size_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const GiB = 2n ** 30n;
let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  // A rack of its own, so the GPU machine has free switch ports to be cabled to.
  for (const id of ["leaf05", "leaf06"]) {
    await server.client(SwitchService, fixture.infraToken).register({ partition: "p1", id, rack: "r3", nics: [{ name: "swp1" }] });
  }
});

const gpuMachine = randomUUID();
const register = () =>
  server.client(BootService, fixture.infraToken).register({
    partition: "p1",
    machineId: gpuMachine,
    hardware: {
      memory: 512n * GiB,
      cpus: [
        { model: "AMD EPYC 9354 32-Core", cores: 32, threads: 64 },
        { model: "AMD EPYC 9354P 32-Core", cores: 32, threads: 64 },
      ],
      disks: [
        { name: "/dev/nvme0n1", size: 3_840_000_000_000n },
        { name: "/dev/nvme1n1", size: 3_840_000_000_000n },
      ],
      gpus: [
        { vendor: "NVIDIA", model: "H100 80GB" },
        { vendor: "NVIDIA", model: "H100 80GB" },
        { vendor: "NVIDIA", model: "L4" },
      ],
      nics: ["leaf05", "leaf06"].map((l, i) => ({ name: `eth${i}`, mac: `0c:c4:7a:00:01:0${i}`, neighbors: [{ hostname: l, port: "swp1" }] })),
    },
  });

describe("size suggestion", () => {
  it("describes a machine that matches no size, and the machine matches a size created from it", async () => {
    expect((await register()).size).toBe("unknown");
    const sizes = server.client(AdminSizeService, server.adminToken);
    const { constraints } = await sizes.suggest({ machineId: gpuMachine.toUpperCase() });
    expect(constraints.map((c) => ({ type: c.type, min: c.min, max: c.max, identifier: c.identifier }))).toEqual([
      { type: C.CORES, min: 64n, max: 64n, identifier: "AMD EPYC 9354*" },
      { type: C.MEMORY, min: 512n * GiB, max: 512n * GiB, identifier: "" },
      { type: C.STORAGE, min: 7_680_000_000_000n, max: 7_680_000_000_000n, identifier: "/dev/nvme*" },
      { type: C.GPU, min: 2n, max: 2n, identifier: "H100 80GB" },
      { type: C.GPU, min: 1n, max: 1n, identifier: "L4" },
    ]);
    await sizes.create({ id: "g1-epyc-h100", constraints });
    // Registering again matches the hardware against the sizes as they are now.
    expect((await register()).size).toBe("g1-epyc-h100");
  });

  it("refuses machines that are unknown, have not registered hardware, or are not named by a UUID", async () => {
    const sizes = server.client(AdminSizeService, server.adminToken);
    const unknown = randomUUID();
    await expectCode(sizes.suggest({ machineId: unknown }), Code.NotFound, `machine "${unknown}"`);
    const bare = randomUUID();
    await server.client(BootService, fixture.infraToken).dhcp({ partition: "p1", machineId: bare });
    await expectCode(sizes.suggest({ machineId: bare }), Code.FailedPrecondition, "has not registered its hardware");
    await expectCode(sizes.suggest({ machineId: "node-1" }), Code.InvalidArgument, "machine_id:");
  });

  it("is open to operator viewers, not to tenants", async () => {
    const tokens = server.client(AdminTokenService, server.adminToken);
    const viewer = (await tokens.create({ subject: "olga", roles: { adminRole: AdminRole.VIEWER } })).secret;
    const tenant = (await tokens.create({ subject: "tina", roles: { projectRoles: { pa: ProjectRole.OWNER } } })).secret;
    expect((await server.client(AdminSizeService, viewer).suggest({ machineId: gpuMachine })).constraints).toHaveLength(5);
    await expectCode(server.client(AdminSizeService, tenant).suggest({ machineId: gpuMachine }), Code.PermissionDenied);
  });
});
