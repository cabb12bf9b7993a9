import { describe, expect, it } from "vitest";
import { SimMachine } from "../../edge/sim/machine.js";

const nics = [{ name: "eth0", mac: "0c:c4:7a:00:00:01", neighbors: [{ hostname: "leaf01", port: "swp1" }] }];

describe("simulated machine", () => {
  it("boots by its boot order: PXE hands over to the hammer hook, an empty disk finds nothing to boot", async () => {
    const signals: AbortSignal[] = [];
    const m = new SimMachine({ uuid: "00000000-0000-4000-8000-000000000001", nics }, { pxeBoot: (_m, s) => signals.push(s) });
    expect(m.power).toBe("off");
    m.powerOn("pxe");
    expect([m.power, m.running, signals.length]).toEqual(["on", "hammer", 1]);
    let seen = "";
    m.console.on("data", (d: Buffer) => (seen += d.toString()));
    m.console.write("root\n");
    expect(m.consoleLog).toContain("no login in the discovery image");
    // A reset ends what ran (the hammer's signal) and boots again.
    m.setBootOrder("disk");
    m.reset();
    expect(signals[0]!.aborted).toBe(true);
    expect(m.running).toBe("nothing");
    expect(m.consoleLog).toContain("No bootable device.");
    // The stream carries what was printed after attaching; the earlier boot log is in consoleLog.
    await new Promise((r) => setImmediate(r));
    expect(seen).toContain("no login in the discovery image");
    expect(seen).toContain("No bootable device.");
    expect(seen).not.toContain("Loading metal-hammer");
    m.powerOff();
    expect([m.power, m.running, m.boots]).toEqual(["off", "off", 2]);
  });

  it("a wipe takes partitions, RAID, LVM and filesystems built on the disk with it", async () => {
    const m = new SimMachine({
      uuid: "00000000-0000-4000-8000-000000000002",
      nics,
      disks: [
        { name: "/dev/sda", sizeBytes: 10n ** 11n },
        { name: "/dev/sdb", sizeBytes: 10n ** 11n },
      ],
    });
    const part = (device: string) => ({ number: 1, device: `${device}1`, label: "", gptType: "raid" as const, startMib: 1, endMib: 1000 });
    await m.partitionDisk({ device: "/dev/sda", partitions: [part("/dev/sda")] });
    await m.partitionDisk({ device: "/dev/sdb", partitions: [part("/dev/sdb")] });
    await m.createRaid({ device: "/dev/md0", level: 1, devices: ["/dev/sda1", "/dev/sdb1"], spares: 0, createOptions: [] });
    await m.createVolumeGroup("vg0", ["/dev/md0"]);
    await m.createLogicalVolume({ volumeGroup: "vg0", name: "root", device: "/dev/vg0/root", sizeMib: 0, type: "linear" });
    await m.format({ device: "/dev/vg0/root", path: "/", format: "ext4", label: "", mountOptions: [], createOptions: [] });
    await expect(m.format({ device: "/dev/sdc1", path: "/x", format: "ext4", label: "", mountOptions: [], createOptions: [] })).rejects.toThrow(/does not exist/);
    await m.wipeDisk("/dev/sdb");
    expect([m.raids.size, m.volumeGroups.size, m.volumes.size, m.filesystems.size]).toEqual([0, 0, 0, 0]);
    expect(m.disks.map((d) => [d.partitions.length, d.wipes])).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });
});
