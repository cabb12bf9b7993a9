import { describe, expect, it } from "vitest";
import { BmcCommandName } from "../../server/domain/bmc-command.js";
import { TENANT_COMMAND_WINDOW_MS, TENANT_COMMANDS_PER_WINDOW, tenantCommandFloodProblem, tenantCommandProblem } from "../../server/domain/tenant-bmc-command.js";

const machine = { id: "m1", state: "available" as const, installing: false };

describe("tenant BMC command rules", () => {
  it("lets tenants switch power and the boot device, never the LED", () => {
    for (const c of [BmcCommandName.POWER_ON, BmcCommandName.POWER_OFF, BmcCommandName.CYCLE, BmcCommandName.RESET, BmcCommandName.BOOT_FROM_PXE, BmcCommandName.BOOT_FROM_DISK, BmcCommandName.BOOT_FROM_BIOS]) {
      expect(tenantCommandProblem(machine, c)).toBeUndefined();
    }
    expect(tenantCommandProblem(machine, BmcCommandName.LED_ON)).toContain("operators only");
    expect(tenantCommandProblem(machine, BmcCommandName.LED_OFF)).toContain("operators only");
  });

  it("refuses everything on a locked machine, and only the boot device while it is installed", () => {
    expect(tenantCommandProblem({ ...machine, state: "locked" }, BmcCommandName.POWER_ON)).toContain("locked");
    expect(tenantCommandProblem({ ...machine, state: "tainted" }, BmcCommandName.CYCLE)).toBeUndefined();
    expect(tenantCommandProblem({ ...machine, installing: true }, BmcCommandName.BOOT_FROM_DISK)).toContain("being installed");
    expect(tenantCommandProblem({ ...machine, installing: true }, BmcCommandName.RESET)).toBeUndefined();
  });

  it("counts only the commands within the window", () => {
    const now = new Date(1_000_000_000);
    const at = (msAgo: number) => new Date(now.getTime() - msAgo);
    const full = Array.from({ length: TENANT_COMMANDS_PER_WINDOW }, (_, i) => at(i * 10));
    expect(tenantCommandFloodProblem("m1", full, now)).toContain(`at most ${TENANT_COMMANDS_PER_WINDOW}`);
    expect(tenantCommandFloodProblem("m1", full.slice(1), now)).toBeUndefined();
    // The oldest one leaves the window: one more may come.
    const aging = [...full.slice(1), at(TENANT_COMMAND_WINDOW_MS)];
    expect(tenantCommandFloodProblem("m1", aging, now)).toBeUndefined();
  });
});
