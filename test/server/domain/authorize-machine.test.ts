import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PermissionSchema, Visibility } from "../../../gen/metal/api/v1/common_pb.js";
import { authorize, type Target } from "../../../server/domain/authorize.js";
import { AdminRole, type MachineCaller, noRoles, type Principal, ProjectRole } from "../../../server/domain/roles.js";

const X = "6f1c2f0e-1d5a-4c1b-9a53-0c0a1b2c3d4e";
const Y = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d";

const machineCaller = (m: Partial<MachineCaller> = {}): Principal => ({
  tokenId: `machine:${X}`,
  subject: `machine:${X}`,
  expiresAt: new Date(Date.now() + 3600_000),
  roles: noRoles(),
  machine: { id: X, partition: "p1", generation: 0, mac: "0c:c4:7a:00:00:01", superseded: false, ...m },
});
const perm = (p: Parameters<typeof create<typeof PermissionSchema>>[1]) => create(PermissionSchema, p);

// The permissions of the methods as the proto declares them.
const hammerMethod = perm({ infra: true, machine: true }); // BootService.Register, Wait, InstallationSucceeded, AbortReinstall
const renew = perm({ machine: true }); // BootService.RenewCredential
const readForMachines = perm({ visibility: Visibility.AUTHENTICATED, machine: true }); // ImageService.Get, FilesystemLayoutService.Get
const infraOnly = perm({ infra: true }); // BootService.Boot, Dhcp, SwitchService.*
const authenticated = perm({ visibility: Visibility.AUTHENTICATED }); // e.g. ImageService.List
const adminOnly = perm({ adminRole: AdminRole.ADMIN });
const adminRead = perm({ adminRole: AdminRole.VIEWER });
const projectRead = perm({ projectRole: ProjectRole.VIEWER });
const publicMethod = perm({ visibility: Visibility.PUBLIC });

/** The tables below are `as const`: their id lists are readonly. */
type TableTarget = Omit<Target, "machineIds"> & { machineIds?: readonly string[] };
const decide = (p: ReturnType<typeof perm>, target: TableTarget, who: Principal = machineCaller()) => authorize(who, p, { ...target, machineIds: target.machineIds && [...target.machineIds] });

describe("authorize, a machine credential", () => {
  it.each([
    ["its own machine on a hammer method", hammerMethod, { partition: "p1", machineIds: [X] }],
    ["its own machine, the id in upper case", hammerMethod, { partition: "p1", machineIds: [X.toUpperCase()] }],
    ["RenewCredential for itself", renew, { partition: "p1", machineIds: [X] }],
    ["a batch of events, all its own", hammerMethod, { partition: "p1", machineIds: [X, X] }],
    ["a machine method naming no machine field (image lookup)", readForMachines, {}],
  ] as const)("may call %s", (_name, p, target) => {
    expect(decide(p, target)).toEqual({ allow: true });
  });

  it.each([
    ["another machine", hammerMethod, { partition: "p1", machineIds: [Y] }, "acts only for machine"],
    ["RenewCredential for another machine", renew, { partition: "p1", machineIds: [Y] }, "acts only for machine"],
    ["a batch mixing its events with another machine's", hammerMethod, { partition: "p1", machineIds: [X, Y] }, "acts only for machine"],
    ["an event without a machine id", hammerMethod, { partition: "p1", machineIds: [X, ""] }, "acts only for machine"],
    ["an empty batch", hammerMethod, { partition: "p1", machineIds: [] }, "names no machine"],
    ["an empty machine id", hammerMethod, { partition: "p1", machineIds: [""] }, "acts only for machine"],
    ["its own machine in another partition", hammerMethod, { partition: "p2", machineIds: [X] }, 'partition "p1"'],
    ["its own machine with an empty partition", hammerMethod, { partition: "", machineIds: [X] }, 'partition "p1"'],
    ["an infra-only method (Boot, Dhcp, switches)", infraOnly, { partition: "p1", machineIds: [X] }, "only metal-hammer's methods"],
    ["an authenticated method without `machine`", authenticated, {}, "only metal-hammer's methods"],
    ["an operator method", adminOnly, {}, "only metal-hammer's methods"],
    ["an operator read", adminRead, {}, "only metal-hammer's methods"],
    ["a project method", projectRead, { project: "pa" }, "only metal-hammer's methods"],
  ] as const)("may not call %s", (_name, p, target, message) => {
    const d = decide(p, target);
    expect(d).toMatchObject({ allow: false, code: "permission_denied" });
    expect((d as { message: string }).message).toContain(message);
  });

  it("gets nothing from roles a principal with a machine also carries", () => {
    // A machine caller is decided by the machine rule alone, even if roles were somehow attached.
    const withRoles: Principal = { ...machineCaller(), roles: { ...noRoles(), adminRole: AdminRole.ADMIN, infraPartition: "p1" } };
    expect(decide(adminOnly, {}, withRoles)).toMatchObject({ allow: false, code: "permission_denied" });
    expect(decide(infraOnly, { partition: "p1" }, withRoles)).toMatchObject({ allow: false, code: "permission_denied" });
    expect(decide(hammerMethod, { partition: "p1", machineIds: [Y] }, withRoles)).toMatchObject({ allow: false, code: "permission_denied" });
  });

  it("is still let through on a public method", () => {
    expect(decide(publicMethod, {})).toEqual({ allow: true });
  });

  it("leaves the infra rule as it was: infra tokens on the hammer's methods, not on RenewCredential", () => {
    const infraP1: Principal = { tokenId: "t", subject: "p1-agents", expiresAt: new Date(Date.now() + 3600_000), roles: { ...noRoles(), infraPartition: "p1" } };
    expect(authorize(infraP1, hammerMethod, { partition: "p1", machineIds: [Y] })).toEqual({ allow: true });
    expect(authorize(infraP1, hammerMethod, { partition: "p2", machineIds: [Y] })).toMatchObject({ allow: false, code: "permission_denied" });
    expect(authorize(infraP1, renew, { partition: "p1", machineIds: [Y] })).toMatchObject({ allow: false, code: "permission_denied" });
  });
});

describe("authorize, a method for machine credentials alone (machine and nothing else)", () => {
  const token = (roles: Partial<Principal["roles"]>): Principal => ({ tokenId: "t", subject: "someone", expiresAt: new Date(Date.now() + 3600_000), roles: { ...noRoles(), ...roles } });

  it.each([
    ["an operator admin", token({ adminRole: AdminRole.ADMIN })],
    ["an operator viewer", token({ adminRole: AdminRole.VIEWER })],
    ["an infra token of the machine's partition", token({ infraPartition: "p1" })],
    ["a project owner", token({ projectRoles: { pa: ProjectRole.OWNER } })],
  ])("refuses %s", (_, who) => {
    expect(authorize(who, renew, { partition: "p1", machineIds: [X] })).toMatchObject({ allow: false, code: "permission_denied" });
  });

  it("still lets an operator admin call a method that also states infra", () => {
    expect(authorize(token({ adminRole: AdminRole.ADMIN }), hammerMethod, { partition: "p1", machineIds: [X] })).toEqual({ allow: true });
  });
});
