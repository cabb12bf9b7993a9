import { describe, expect, it } from "vitest";
import { BmcCommandName, isPlannedReboot, ledStateAfter } from "../../../server/domain/bmc-command.js";
import { mergeBmcReport } from "../../../server/domain/bmc-report.js";
import { layoutDiskProblems, layoutReinstallable } from "../../../server/domain/filesystem-layout.js";
import { machineTags } from "../../../server/domain/machine-tags.js";

const MiB = 1024 * 1024;

describe("machineTags", () => {
  it.each<{ user: string[]; placement: string[]; system: Record<string, string>; want: string[] }>([
    { user: ["a", "b", "a"], placement: [], system: {}, want: ["a", "b"] },
    { user: ["k=1", "k=2"], placement: [], system: {}, want: ["k=2"] },
    { user: ["x"], placement: ["p", "x"], system: {}, want: ["x", "p"] },
    { user: ["metal.io/rack=fake", "z"], placement: [], system: { "metal.io/rack": "r1" }, want: ["z", "metal.io/rack=r1"] },
    { user: [], placement: [], system: { s: "1", t: "2" }, want: ["s=1", "t=2"] },
  ])("$user + $placement + $system -> $want", ({ user, placement, system, want }) => {
    expect(machineTags(user, placement, system)).toEqual(want);
  });
});

describe("BMC commands", () => {
  it.each(Object.values(BmcCommandName))("%s: planned reboot and LED state", (c) => {
    expect(isPlannedReboot(c)).toBe(c === "POWER_OFF" || c === "RESET" || c === "CYCLE");
    expect(ledStateAfter(c)).toBe(c === "LED_ON" ? "on" : c === "LED_OFF" ? "off" : undefined);
  });
});

describe("mergeBmcReport", () => {
  const base = { address: "10.0.0.1:623", mac: "AA:00:00:00:00:01", user: "u", password: "p", interface: "lanplus", version: "1", powerState: "on", fru: { a: "1" } };
  const now = new Date("2026-12-01T10:00:00Z");

  it("takes a first report as it is, normalised", () => {
    expect(mergeBmcReport(null, base, now)).toEqual({ ...base, mac: "aa:00:00:00:00:01", powerState: "ON", lastUpdated: now.toISOString() });
  });

  it("keeps known fields the new report leaves empty and merges FRU keys", () => {
    const stored = mergeBmcReport(null, base, now);
    const later = new Date("2026-12-01T10:05:00Z");
    const next = mergeBmcReport(stored, { ...base, mac: "", password: "", powerState: "", version: "2", fru: { b: "2", a: "" } }, later);
    expect(next).toMatchObject({ mac: "aa:00:00:00:00:01", password: "p", powerState: "ON", version: "2", fru: { a: "1", b: "2" }, lastUpdated: later.toISOString() });
  });

  it("reports UNKNOWN power when nothing is known", () => {
    expect(mergeBmcReport(null, { ...base, powerState: "" }, now).powerState).toBe("UNKNOWN");
  });
});

describe("layoutDiskProblems", () => {
  const layout = (sizes: number[], wipe = false) => ({ disks: [{ device: "/dev/sda", wipeOnReinstall: wipe, partitions: sizes.map((sizeMib, i) => ({ number: i + 1, label: "", sizeMib, gptType: 1 })) }] });

  it.each([
    { name: "fits exactly with fixed partitions", sizes: [512, 512], disk: 1024 * MiB, ok: true },
    { name: "fixed partitions too large", sizes: [512, 513], disk: 1024 * MiB, ok: false },
    { name: "rest partition needs at least 1 MiB", sizes: [1024, 0], disk: 1024 * MiB, ok: false },
    { name: "rest partition with room", sizes: [512, 0], disk: 1024 * MiB, ok: true },
  ])("$name", ({ sizes, disk, ok }) => {
    expect(layoutDiskProblems(layout(sizes), [{ name: "/dev/sda", sizeBytes: disk }]).length === 0).toBe(ok);
  });

  it("names a missing disk", () => {
    expect(layoutDiskProblems(layout([1]), [{ name: "/dev/nvme0n1", sizeBytes: 10 * MiB }])).toEqual(["disk /dev/sda does not exist"]);
  });

  it("a layout is reinstallable only if it wipes a disk", () => {
    expect(layoutReinstallable(layout([1], true))).toBe(true);
    expect(layoutReinstallable(layout([1], false))).toBe(false);
  });
});
