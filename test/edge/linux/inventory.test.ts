import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hostFiles, readInventory, type SystemFiles } from "../../../edge/hammer/linux/inventory.js";
import { parseCpuinfo, parseIpLinks, parseLsblk, parseMeminfo } from "../../../edge/hammer/linux/parsers.js";
import { spawnRunner } from "../../../edge/hammer/linux/runner.js";
import { FakeRunner } from "./fake-runner.js";

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "fixtures", name), "utf8");

/** The /proc and /sys files of a captured machine ("server" or "qemu"). */
function filesOf(machine: string, extra: Record<string, string | undefined> = {}, devices: string[] = []): SystemFiles {
  const files: Record<string, string | undefined> = {
    "/sys/class/dmi/id/product_uuid": fixture(`${machine}-product_uuid`),
    "/proc/meminfo": fixture(`${machine}-meminfo`),
    "/proc/cpuinfo": fixture(`${machine}-cpuinfo`),
    "/sys/class/dmi/id/bios_vendor": fixture(`${machine}-bios_vendor`),
    "/sys/class/dmi/id/bios_version": fixture(`${machine}-bios_version`),
    "/sys/class/dmi/id/bios_date": fixture(`${machine}-bios_date`),
    ...extra,
  };
  return { read: async (p) => files[p], exists: async (p) => devices.includes(p) };
}

function runnerOf(machine: string): FakeRunner {
  const r = new FakeRunner()
    .on("lsblk", { stdout: fixture(`${machine}-lsblk.json`) })
    .on("ip", { stdout: fixture(`${machine}-ip-link.json`) })
    .on("lldpcli", { stdout: fixture(`${machine}-lldp.json`) })
    .install("lldpcli");
  return r;
}

const noWait = { timeoutMs: 10_000, intervalMs: 1_000, enough: 2 };

describe("the Linux inventory", () => {
  it("of a server: UUID, memory, sockets, fixed disks, physical NICs with their switches, GPUs, BIOS", async () => {
    const runner = runnerOf("server")
      .on("lspci", { stdout: fixture("server-lspci.txt") })
      .install("lspci");
    const inv = await readInventory({ runner, files: filesOf("server"), lldp: noWait, sleep: async () => {} });
    expect(inv.uuid).toBe("4c4c4544-0047-3510-8051-b3c04f4b5a32");
    expect(inv.memoryBytes).toBe(263721548n * 1024n);
    expect(inv.cpus.map((c) => [c.cores, c.threads])).toEqual([
      [4, 8],
      [4, 8],
    ]);
    expect(inv.disks.map((d) => d.name)).toEqual(["/dev/sda", "/dev/sdb", "/dev/nvme0n1"]);
    expect(inv.nics).toEqual([
      { name: "eno1", mac: "0c:c4:7a:ed:3e:c2", neighbors: [{ hostname: "leaf01", port: "Ethernet4" }] },
      { name: "eno2", mac: "0c:c4:7a:ed:3e:c3", neighbors: [{ hostname: "leaf02", port: "swp5" }] },
      {
        name: "enp94s0f0",
        mac: "3c:ec:ef:10:20:31",
        neighbors: [
          { hostname: "tor-mgmt", port: "Gi1/0/17" },
          { hostname: "", port: "52:54:00:aa:bb:cd" },
        ],
      },
    ]);
    expect(inv.gpus.map((g) => g.vendor)).toEqual(["NVIDIA Corporation", "Advanced Micro Devices, Inc. [AMD/ATI]"]);
    expect(inv.bios).toEqual({ vendor: "American Megatrends Inc.", version: "3.4", date: "11/08/2022" });
    // Every command as an argv, none through a shell.
    expect(runner.commands).toEqual(expect.arrayContaining(["lsblk -J -b -d -o NAME,SIZE,TYPE,RO,RM", "ip -j -d link show", "lldpcli -f json show neighbors", "lspci -mm -nn"]));
  });

  it("of a QEMU VM: /sys decides which links are NICs, a single-interface LLDP answer, no lspci", async () => {
    const runner = runnerOf("qemu");
    // ens3 and eth0 are virtio devices; without a /sys device link a link is virtual.
    const files = filesOf("qemu", {}, ["/sys/class/net/ens3/device"]);
    const inv = await readInventory({ runner, files, lldp: { ...noWait, enough: 1 }, sleep: async () => {} });
    expect(inv).toMatchObject({
      uuid: "0e1d2c3b-0000-4000-8000-000000000001",
      memoryBytes: 2014124n * 1024n,
      cpus: [{ vendor: "GenuineIntel", model: "QEMU Virtual CPU version 2.5+", cores: 2, threads: 2 }],
      disks: [
        { name: "/dev/sda", sizeBytes: 10737418240n },
        { name: "/dev/vda", sizeBytes: 21474836480n },
      ],
      nics: [{ name: "ens3", mac: "52:54:00:12:34:56", neighbors: [{ hostname: "leaf01", port: "swp1" }] }],
      gpus: [],
      bios: { vendor: "SeaBIOS", date: "04/01/2014" },
    });
  });

  it("falls back to dmidecode for the UUID", async () => {
    const runner = runnerOf("qemu")
      .on("dmidecode -s system-uuid", { stdout: fixture("dmidecode-system-uuid.txt") })
      .install("dmidecode");
    const inv = await readInventory({ runner, files: filesOf("qemu", { "/sys/class/dmi/id/product_uuid": undefined }), lldp: { ...noWait, enough: 0 }, sleep: async () => {} });
    expect(inv.uuid).toBe("4c4c4544-0047-3510-8051-b3c04f4b5a32");
    await expect(readInventory({ runner: runnerOf("qemu"), files: filesOf("qemu", { "/sys/class/dmi/id/product_uuid": undefined }) })).rejects.toThrow(/dmidecode is not installed/);
  });

  it("waits for LLDP until two NICs see a switch, and gives up after its timeout", async () => {
    let polls = 0;
    const runner = runnerOf("server").on("lldpcli", () => {
      polls++;
      return { stdout: fixture(polls < 3 ? "lldp-none.json" : "server-lldp.json") };
    });
    const slept: number[] = [];
    const heard: unknown[] = [];
    const inv = await readInventory({ runner, files: filesOf("server"), lldp: noWait, sleep: async (ms) => void slept.push(ms), log: (m, f) => heard.push([m, f]) });
    expect(heard).toEqual([["LLDP neighbours", { neighbors: Object.fromEntries(inv.nics.filter((n) => n.neighbors.length > 0).map((n) => [n.name, n.neighbors.map((x) => `${x.hostname} ${x.port}`)])) }]]);
    expect(heard).not.toEqual([["LLDP neighbours", { neighbors: {} }]]);
    expect(polls).toBe(3);
    expect(slept).toEqual([1_000, 1_000]);
    expect(inv.nics[0]!.neighbors).toHaveLength(1);

    const silent = runnerOf("server").on("lldpcli", { stdout: fixture("lldp-none.json") });
    const logs: string[] = [];
    const alone = await readInventory({ runner: silent, files: filesOf("server"), lldp: noWait, sleep: async () => {}, log: (m) => logs.push(m) });
    expect(silent.commands.filter((c) => c.startsWith("lldpcli"))).toHaveLength(11);
    expect(alone.nics.every((n) => n.neighbors.length === 0)).toBe(true);
    expect(logs).toEqual([expect.stringMatching(/fewer NICs see a switch/), "LLDP neighbours"]);
  });

  it("reports NICs without neighbours when lldpcli is not installed", async () => {
    const runner = runnerOf("server");
    runner.has = () => false;
    const inv = await readInventory({ runner, files: filesOf("server") });
    expect(inv.nics.map((n) => n.neighbors)).toEqual([[], [], []]);
    expect(runner.commands.some((c) => c.startsWith("lldpcli"))).toBe(false);
  });
});

const real = spawnRunner();
const realTools = process.platform === "linux" && real.has("lsblk") && real.has("ip");

describe.skipIf(!realTools)("the inventory's commands on this machine", () => {
  it("are accepted by the installed lsblk and ip, and what they print parses", async () => {
    // The fixtures are captured outputs; this checks the argv against the real tools and their real output.
    const disks = parseLsblk((await real.run(["lsblk", "-J", "-b", "-d", "-o", "NAME,SIZE,TYPE,RO,RM"])).stdout);
    expect(disks.every((d) => d.name.startsWith("/dev/") && d.sizeBytes > 0n)).toBe(true);
    const links = parseIpLinks((await real.run(["ip", "-j", "-d", "link", "show"])).stdout);
    expect(links.every((l) => l.name !== "lo" && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(l.mac))).toBe(true);
    expect(parseMeminfo((await hostFiles.read("/proc/meminfo"))!)).toBeGreaterThan(0n);
    expect(parseCpuinfo((await hostFiles.read("/proc/cpuinfo"))!).length).toBeGreaterThan(0);
  });
});
