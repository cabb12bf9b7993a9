import { randomUUID } from "node:crypto";
import { type Client, Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { NetworkService as AdminNetworkService } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitionService } from "../../gen/metal/admin/v1/partition_pb.js";
import { IPService } from "../../gen/metal/api/v1/ip_pb.js";
import { MachineService } from "../../gen/metal/api/v1/machine_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { SizeReservationService } from "../../gen/metal/api/v1/size_reservation_pb.js";
import { kPrincipal } from "../../server/auth/context.js";
import type { ProjectDirectory } from "../../server/auth/project-directory.js";
import { createInProcessBus } from "../../server/bus/fanout.js";
import type { DbHandle } from "../../server/db/handle.js";
import { machines, type StoredAllocation, sizeReservations, sizes } from "../../server/db/schema/index.js";
import { projectScope } from "../../server/domain/project-scope.js";
import { noRoles } from "../../server/domain/roles.js";
import { createLogger } from "../../server/logger.js";
import { tenantIpRepository as tenantIps } from "../../server/repositories/tenant/ip-repository.js";
import { tenantMachineRepository as tenantMachines } from "../../server/repositories/tenant/machine-repository.js";
import { tenantNetworkRepository as tenantNetworks } from "../../server/repositories/tenant/network-repository.js";
import { tenantSizeReservationRepository as tenantReservations } from "../../server/repositories/tenant/size-reservation-repository.js";
import { createAdminNetworkService } from "../../server/services/admin/network-service.js";
import { createAdminPartitionService } from "../../server/services/admin/partition-service.js";
import { createIpService } from "../../server/services/api/ip-service.js";
import { createMachineService } from "../../server/services/api/machine-service.js";
import { createNetworkService } from "../../server/services/api/network-service.js";
import { createSizeReservationService } from "../../server/services/api/size-reservation-service.js";
import { consolePassword, freeMachine, reinstallMachine, updateMachine } from "../../server/usecases/machines/lifecycle.js";
import { createReferenceLookups } from "../../server/usecases/machines/reference-lookups.js";
import { allocateIp, freeChildNetwork, freeIp } from "../../server/usecases/networks/allocation.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

/**
 * Issue 14: tenant reads and writes go through repositories scoped to the
 * caller's projects. These tests call the repositories, the use cases and the
 * handlers WITHOUT the auth interceptor and without any check of their own:
 * project "pa" still cannot read, change or free anything of project "pb",
 * and every refusal reads exactly like the answer for an id that does not exist.
 */

let db: DbHandle;
/** Every project exists, without quotas: what masterdata would answer. */
const projects: ProjectDirectory = {
  tenantOf: async (p) => (["pa", "pb"].includes(p) ? "t1" : undefined),
  quotasOf: async (p) => (["pa", "pb"].includes(p) ? {} : undefined),
};
const pa = projectScope("pa");
const pb = projectScope("pb");

let nets: Client<typeof NetworkService>;
let ipsApi: Client<typeof IPService>;
let reservationsApi: Client<typeof SizeReservationService>;
let machinesApi: Client<typeof MachineService>;
/** Project pb's private network, pb's shared network and pb's IP. */
const theirs = { network: "", shared: "", ip: "", machine: randomUUID(), reservation: "r-of-pb" };

/** The code and message of a failed call with `id` replaced, so answers about different ids compare; "OK" when it succeeded. */
async function answer(call: Promise<unknown>, id: string): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (err) {
    const ce = ConnectError.from(err);
    return `${Code[ce.code]}: ${ce.rawMessage.replaceAll(id, "<id>")}`;
  }
}

/** Asserts that `call` answers for `id` what it answers for an id that does not exist, and that this is NotFound. */
async function expectLikeMissing(call: (id: string) => Promise<unknown>, id: string, missing: string, what: string): Promise<void> {
  const forTheirs = await answer(call(id), id);
  expect(forTheirs, what).toMatch(/^NotFound: /);
  expect(forTheirs, what).toBe(await answer(call(missing), missing));
}

const allocation = (project: string): StoredAllocation => ({
  uuid: randomUUID(),
  project,
  name: "db",
  description: "theirs",
  hostname: "db",
  role: "machine",
  image: "debian-12",
  filesystemLayout: "default",
  sshKeys: [],
  userData: "",
  asn: 4_210_000_001,
  networks: [],
  createdAt: new Date().toISOString(),
  createdBy: "owner",
  consolePassword: "their-secret",
  succeeded: true,
});

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
  // Handlers over an in-memory transport: no HTTP server and no auth interceptor in front of them. Only a
  // caller is named (audit lines need one), as the auth interceptor would after verifying a token; nothing is authorized.
  const someCaller: Interceptor = (next) => (req) => {
    req.contextValues.set(kPrincipal, { tokenId: "t", subject: "someone", expiresAt: new Date(Date.now() + 60_000), roles: noRoles() });
    return next(req);
  };
  const transport = createRouterTransport(
    (router) => {
      router.service(AdminPartitionService, createAdminPartitionService({ db }));
      router.service(AdminNetworkService, createAdminNetworkService({ db, projects }));
      router.service(NetworkService, createNetworkService({ db, projects }));
      router.service(IPService, createIpService({ db, projects }));
      router.service(SizeReservationService, createSizeReservationService({ db }));
      router.service(MachineService, createMachineService({ db, projects, bus: createInProcessBus(), log: createLogger("silent"), refs: createReferenceLookups(db) }));
    },
    { router: { interceptors: [someCaller] } },
  );
  nets = createClient(NetworkService, transport);
  ipsApi = createClient(IPService, transport);
  reservationsApi = createClient(SizeReservationService, transport);
  machinesApi = createClient(MachineService, transport);

  await createClient(AdminPartitionService, transport).create({ id: "p1" });
  const adminNets = createClient(AdminNetworkService, transport);
  await adminNets.create({ id: "super-p1", type: NetworkType.SUPER, partition: "p1", prefixes: ["10.0.0.0/16"], defaultChildPrefixLength: { ipv4: 24 } });
  await adminNets.create({ id: "internet", type: NetworkType.EXTERNAL, prefixes: ["185.1.2.0/24"] });
  await nets.create({ project: "pa", partition: "p1", name: "mine" });
  theirs.network = (await nets.create({ project: "pb", partition: "p1", name: "theirs" })).network!.id;
  theirs.shared = (await nets.create({ project: "pb", partition: "p1", name: "theirs-shared", shared: true })).network!.id;
  theirs.ip = (await ipsApi.create({ project: "pb", network: theirs.network, name: "theirs" })).ip!.id;
  await db.insert(machines).values({ id: theirs.machine, project: "pb", allocation: allocation("pb") });
  await db.insert(sizes).values({ id: "s1", constraints: [] });
  await db.insert(sizeReservations).values({ id: theirs.reservation, sizeId: "s1", project: "pb", partitionIds: ["p1"], amount: 1 });
});

describe("tenant repositories put the scope into the SQL", () => {
  it("finds the scope's own rows", async () => {
    expect((await tenantMachines.get(db, pb, theirs.machine)).machine.project).toBe("pb");
    expect((await tenantIps.get(db, pb, theirs.ip)).project).toBe("pb");
    expect((await tenantNetworks.getUsable(db, pb, theirs.network)).project).toBe("pb");
    expect((await tenantReservations.get(db, pb, theirs.reservation)).project).toBe("pb");
  });

  it("answers another project's machine, IP, network and size reservation as missing", async () => {
    const none = "0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee";
    await expectLikeMissing((id) => tenantMachines.get(db, pa, id), theirs.machine, none, "machine get");
    await expectLikeMissing((id) => db.transaction((tx) => tenantMachines.lockAllocated(tx, pa, id)), theirs.machine, none, "machine lock");
    await expectLikeMissing((id) => tenantIps.get(db, pa, id), theirs.ip, none, "ip get");
    await expectLikeMissing((id) => tenantIps.update(db, pa, id, 1, { name: "mine now" }), theirs.ip, none, "ip update");
    await expectLikeMissing((id) => tenantNetworks.getUsable(db, pa, id), theirs.network, none, "network get");
    await expectLikeMissing((id) => tenantNetworks.updateOwned(db, pa, id, 1, { name: "mine now" }), theirs.network, none, "network update");
    await expectLikeMissing((id) => db.transaction((tx) => tenantNetworks.deleteOwned(tx, pa, id)), theirs.network, none, "network delete");
    // A shared network is usable by everyone, but changed and freed only by its project.
    expect((await tenantNetworks.getUsable(db, pa, theirs.shared)).id).toBe(theirs.shared);
    await expectLikeMissing((id) => tenantNetworks.updateOwned(db, pa, id, 1, { name: "mine now" }), theirs.shared, none, "shared network update");
    // A partition's super network is no tenant's; an external one every tenant's to use.
    await expectLikeMissing((id) => tenantNetworks.getUsable(db, pa, id), "super-p1", none, "super network get");
    expect((await tenantNetworks.getUsable(db, pa, "internet")).id).toBe("internet");
    await expectLikeMissing((id) => tenantReservations.get(db, pa, id), theirs.reservation, none, "size reservation get");
    // The address of their IP is not a static IP the scope could attach to a machine.
    const address = (await tenantIps.get(db, pb, theirs.ip)).ip;
    expect(await db.transaction((tx) => tenantIps.lockByAddress(tx, pa, address))).toBeUndefined();
    expect(await db.transaction((tx) => tenantIps.lockByAddress(tx, pb, address))).toMatchObject({ id: theirs.ip });
  });

  it("lists only the scope's rows", async () => {
    const page = { limit: 100, after: undefined };
    expect((await tenantMachines.list(db, pa, page)).items).toEqual([]);
    expect((await tenantIps.list(db, pa, {}, page)).items).toEqual([]);
    expect((await tenantNetworks.list(db, pa, page)).items.map((n) => n.name)).toEqual(["mine"]);
    expect((await tenantReservations.list(db, pa, page)).items).toEqual([]);
    expect((await tenantMachines.list(db, pb, page)).items.map((m) => m.machine.id)).toEqual([theirs.machine]);
  });

  it("cannot be called without a scope, nor with a forged one (checked by tsc)", () => {
    const withoutScope = () =>
      // @ts-expect-error the scope is a mandatory parameter of every tenant read
      tenantIps.get(db, theirs.ip);
    const forged = () =>
      // @ts-expect-error a scope is made by projectScope only, not by an object literal
      tenantIps.get(db, { projects: ["pb"] }, theirs.ip);
    expect([withoutScope, forged].every((f) => typeof f === "function")).toBe(true);
  });

  it("finds nothing for a call that names no project (only an operator's token gets through the auth interceptor with one)", async () => {
    const nobody = projectScope("");
    expect((await tenantIps.list(db, nobody, {}, { limit: 100, after: undefined })).items).toEqual([]);
    expect(await answer(tenantIps.get(db, nobody, theirs.ip), theirs.ip)).toBe('NotFound: ip "<id>" not found');
  });
});

describe("tenant use cases take the scope, not a project string to compare", () => {
  it("refuses to free, reinstall, update or read the console password of another project's machine, and changes nothing", async () => {
    const none = "no-such-machine";
    await expectLikeMissing((id) => freeMachine(db, pa, id), theirs.machine, none, "free");
    await expectLikeMissing((id) => reinstallMachine(db, pa, id, "debian-12"), theirs.machine, none, "reinstall");
    await expectLikeMissing((id) => updateMachine(db, pa, id, 1, { description: "mine now" }), theirs.machine, none, "update");
    await expectLikeMissing((id) => consolePassword(db, pa, id), theirs.machine, none, "console password");
    const { machine } = await tenantMachines.get(db, pb, theirs.machine);
    expect(machine.allocation).toMatchObject({ project: "pb", description: "theirs" });
    expect(machine.version).toBe(1);
    // The owner gets through the same code.
    expect(await consolePassword(db, pb, theirs.machine)).toBe("their-secret");
    expect((await updateMachine(db, pb, theirs.machine, 1, { description: "still theirs" })).allocation?.description).toBe("still theirs");
  });

  it("refuses to free another project's IP and network, and to take an IP from its private network", async () => {
    await expectLikeMissing((id) => freeIp(db, pa, id), theirs.ip, randomUUID(), "free ip");
    await expectLikeMissing((id) => freeChildNetwork(db, pa, id), theirs.network, "no-such-net", "free network");
    await expectLikeMissing((id) => allocateIp(db, projects, pa, { project: "pa", network: id } as never), theirs.network, "no-such-net", "allocate ip");
    // A scope cannot write for a project outside it.
    expect(await answer(allocateIp(db, projects, pa, { project: "pb", network: theirs.shared } as never), "pb")).toBe('NotFound: project "<id>" not found');
    expect((await tenantIps.get(db, pb, theirs.ip)).name).toBe("theirs");
    expect((await tenantNetworks.getUsable(db, pb, theirs.network)).name).toBe("theirs");
  });
});

describe("tenant handlers (in-memory transport, no auth interceptor)", () => {
  it("IPService answers another project's IP exactly as a missing one for Get, Update and Delete", async () => {
    const none = randomUUID();
    await expectLikeMissing((id) => ipsApi.get({ id, project: "pa" }), theirs.ip, none, "IP Get");
    await expectLikeMissing((id) => ipsApi.update({ id, project: "pa", version: 1n, name: "mine now" }), theirs.ip, none, "IP Update");
    await expectLikeMissing((id) => ipsApi.delete({ id, project: "pa" }), theirs.ip, none, "IP Delete");
    expect((await ipsApi.get({ id: theirs.ip, project: "pb" })).ip?.name).toBe("theirs");
    expect((await ipsApi.list({ project: "pa" })).ips).toEqual([]);
  });

  it("NetworkService shows a shared network to other projects but lets only its own change or free it", async () => {
    expect((await nets.get({ id: theirs.shared, project: "pa" })).network?.id).toBe(theirs.shared);
    await expectLikeMissing((id) => nets.update({ id, project: "pa", version: 1n, name: "mine now" }), theirs.shared, "no-such-net", "Update shared");
    await expectLikeMissing((id) => nets.delete({ id, project: "pa" }), theirs.shared, "no-such-net", "Delete shared");
    await expectLikeMissing((id) => nets.get({ id, project: "pa" }), theirs.network, "no-such-net", "Get private");
    expect((await nets.update({ id: theirs.shared, project: "pb", version: 1n, name: "renamed by owner" })).network?.name).toBe("renamed by owner");
  });

  it("MachineService answers another project's machine exactly as a missing one for every method that names one", async () => {
    const none = randomUUID();
    const reason = "checking the scope of the call";
    await expectLikeMissing((id) => machinesApi.get({ id, project: "pa" }), theirs.machine, none, "Get");
    await expectLikeMissing((id) => machinesApi.events({ id, project: "pa" }), theirs.machine, none, "Events");
    await expectLikeMissing((id) => machinesApi.update({ id, project: "pa", version: 1n, description: "mine now" }), theirs.machine, none, "Update");
    await expectLikeMissing((id) => machinesApi.consolePassword({ id, project: "pa", reason }), theirs.machine, none, "ConsolePassword");
    await expectLikeMissing((id) => machinesApi.reinstall({ id, project: "pa", image: "debian-12" }), theirs.machine, none, "Reinstall");
    await expectLikeMissing((id) => machinesApi.delete({ id, project: "pa" }), theirs.machine, none, "Delete");
    expect((await machinesApi.list({ project: "pa" })).machines).toEqual([]);
    const { machine } = await machinesApi.get({ id: theirs.machine, project: "pb" });
    expect(machine?.allocation?.project).toBe("pb");
    expect((await machinesApi.consolePassword({ id: theirs.machine, project: "pb", reason })).consolePassword).toBe("their-secret");
  });

  it("SizeReservationService shows a project's reservations to that project only", async () => {
    await expectLikeMissing((id) => reservationsApi.get({ id, project: "pa" }), theirs.reservation, "no-such-reservation", "Get");
    expect((await reservationsApi.list({ project: "pa" })).sizeReservations).toEqual([]);
    expect((await reservationsApi.get({ id: theirs.reservation, project: "pb" })).sizeReservation?.id).toBe(theirs.reservation);
  });
});
