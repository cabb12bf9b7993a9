import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { IPService, IpType } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { machineLifecycleRepository } from "../../server/repositories/machine-repository.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer({ waitTiming: { keepaliveMs: 100, leaseMs: scaled(15_000), recheckMs: 1_000 } });
  fixture = await setUpPartition(server);
});

afterAll(() => fixture.stopAll());

const rows = async <T>(q: ReturnType<typeof sql>) => ((await server.app.db.execute(q)) as unknown as { rows: T[] }).rows;

describe("a machine's life, the test playing metal-hammer", () => {
  it("goes Dhcp -> Register -> Wait -> allocate -> InstallationSucceeded -> Phoned Home -> free -> Machine Reclaim", async () => {
    const infra = fixture.infraToken;
    const boot = server.client(BootService, infra);
    const events = server.client(EventService, infra);
    const editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
    const tenant = server.client(MachineService, editor);
    const admin = server.client(AdminMachineService, server.adminToken);

    const hammer = await fixture.bootMachine("r2");
    const static4 = (await server.client(IPService, editor).create({ project: "pb", network: fixture.primary.pb, type: IpType.STATIC })).ip!;
    const { machine } = await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "app", networks: [fixture.primary.pb] });
    expect(machine?.id).toBe(hammer.id);
    const allocation = await hammer.allocation;
    expect(allocation?.image).toBe("debian-12.0.20250101");

    await events.send({ partition: "p1", events: [T.INSTALLING, T.BOOTING_NEW_KERNEL].map((type) => ({ machineId: hammer.id, type })) });
    await boot.installationSucceeded({
      partition: "p1",
      machineId: hammer.id,
      consolePassword: "s3cret",
      bootInfo: { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" },
    });
    const ports = await rows<{ vrf: string }>(sql`select vrf from machine_connections where machine_id = ${hammer.id}`);
    expect(ports.length).toBe(2);
    expect(ports.every((p) => p.vrf === `vrf${allocation!.networks[0]!.vrf}`)).toBe(true);
    expect((await machineLifecycleRepository.commandsOf(server.app.db, hammer.id)).map((c) => c.command)).toEqual(["BOOT_FROM_DISK"]);

    await events.send({ partition: "p1", events: [{ machineId: hammer.id, type: T.PHONED_HOME }] });
    expect((await admin.get({ id: hammer.id })).machine?.events?.log[0]?.type).toBe(T.PHONED_HOME);

    // Another project's editor sees nothing and frees nothing.
    const stranger = (await server.client(AdminTokens, server.adminToken).create({ subject: "st", roles: { projectRoles: { pa: ProjectRole.EDITOR } } })).secret;
    await expectCode(server.client(MachineService, stranger).delete({ id: hammer.id, project: "pb" }), Code.PermissionDenied);
    await expectCode(server.client(MachineService, stranger).get({ id: hammer.id, project: "pa" }), Code.NotFound);

    const freed = await tenant.delete({ id: hammer.id, project: "pb" });
    expect(freed.machine?.allocation).toBeUndefined();
    const after = await admin.get({ id: hammer.id });
    expect(after.machine?.events?.log[0]?.type).toBe(T.MACHINE_RECLAIM);
    expect(await rows(sql`select ip from ips where machine_id = ${hammer.id}`)).toEqual([]);
    expect((await rows<{ n: number }>(sql`select count(*)::int as n from asns where owner = ${hammer.id}`))[0]!.n).toBe(0);
    expect((await rows<{ ip: string }>(sql`select ip from ips where id = ${static4.id}`)).length).toBe(1);
    expect((await rows<{ vrf: string | null }>(sql`select vrf from machine_connections where machine_id = ${hammer.id}`)).every((p) => p.vrf === null)).toBe(true);
    expect((await machineLifecycleRepository.commandsOf(server.app.db, hammer.id)).map((c) => c.command)).toEqual(["BOOT_FROM_DISK", "LED_OFF", "BOOT_FROM_PXE", "RESET"]);
    await expectCode(tenant.delete({ id: hammer.id, project: "pb" }), Code.NotFound);

    // Reclaimed: it PXE-boots, prepares and waits again.
    await events.send({ partition: "p1", events: [T.PXE_BOOTING, T.PREPARING, T.REGISTERING, T.WAITING].map((type) => ({ machineId: hammer.id, type })) });
    const final = await admin.get({ id: hammer.id });
    expect(final.machine?.events?.log.slice(0, 2).map((e) => e.type)).toEqual([T.WAITING, T.REGISTERING]);
    expect(final.machine?.events?.crashLoop).toBe(false);
  });

  it("refuses to free a locked machine and to report an installation of a free one", async () => {
    const hammer = await fixture.bootMachine("r1");
    await expectCode(
      server.client(BootService, fixture.infraToken).installationSucceeded({ partition: "p1", machineId: hammer.id, consolePassword: "x", bootInfo: { imageId: "debian-12.0.20250101" } }),
      Code.FailedPrecondition,
      "not allocated",
    );
    const tenant = server.client(MachineService, server.adminToken);
    await tenant.create({ project: "pb", partition: "p1", size: "s1", image: "debian-12", name: "locked", networks: [fixture.primary.pb], machineId: hammer.id });
    await server.app.db.execute(sql`update machines set state = 'locked' where id = ${hammer.id}`);
    await expectCode(tenant.delete({ id: hammer.id, project: "pb" }), Code.FailedPrecondition, "is locked");
    expect((await tenant.get({ id: hammer.id, project: "pb" })).machine?.allocation?.name).toBe("locked");
  });
});
