import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InventoryError, parseCpuinfo, parseIpLinks, parseLldpNeighbors, parseLsblk, parseLspciGpus, parseMeminfo, parseSystemUuid } from "../../../edge/hammer/linux/parsers.js";

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "fixtures", name), "utf8");

describe("SMBIOS UUID", () => {
  it("is read from product_uuid and dmidecode, lowercased", () => {
    expect(parseSystemUuid(fixture("server-product_uuid"))).toBe("4c4c4544-0047-3510-8051-b3c04f4b5a32");
    expect(parseSystemUuid(fixture("qemu-product_uuid"))).toBe("0e1d2c3b-0000-4000-8000-000000000001");
    // dmidecode's warning comment before the value is skipped.
    expect(parseSystemUuid(fixture("dmidecode-system-uuid.txt"))).toBe("4c4c4544-0047-3510-8051-b3c04f4b5a32");
  });

  it("refuses what cannot name a machine", () => {
    expect(() => parseSystemUuid("Not Settable\n")).toThrow(InventoryError);
    expect(() => parseSystemUuid("00000000-0000-0000-0000-000000000000\n")).toThrow(/placeholder/);
    expect(() => parseSystemUuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n")).toThrow(/placeholder/);
    expect(() => parseSystemUuid("")).toThrow(InventoryError);
  });
});

describe("memory", () => {
  it("is MemTotal in bytes", () => {
    expect(parseMeminfo(fixture("server-meminfo"))).toBe(263721548n * 1024n);
    expect(parseMeminfo(fixture("qemu-meminfo"))).toBe(2014124n * 1024n);
    expect(() => parseMeminfo("MemFree: 1 kB\n")).toThrow(/MemTotal/);
  });
});

describe("CPUs", () => {
  it("are one entry per socket with its cores and threads", () => {
    const model = "Intel(R) Xeon(R) Silver 4215R CPU @ 3.20GHz";
    expect(parseCpuinfo(fixture("server-cpuinfo"))).toEqual([
      { vendor: "GenuineIntel", model, cores: 4, threads: 8 },
      { vendor: "GenuineIntel", model, cores: 4, threads: 8 },
    ]);
    expect(parseCpuinfo(fixture("qemu-cpuinfo"))).toEqual([{ vendor: "GenuineIntel", model: "QEMU Virtual CPU version 2.5+", cores: 2, threads: 2 }]);
  });

  it("without socket information (ARM) count every processor as a core of one package", () => {
    const arm = [0, 1, 2, 3].map((i) => `processor\t: ${i}\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n`).join("\n");
    expect(parseCpuinfo(arm)).toEqual([{ vendor: "0x41", model: "", cores: 4, threads: 4 }]);
    expect(() => parseCpuinfo("")).toThrow(/no processor/);
  });
});

describe("disks", () => {
  it("are the fixed, writable disks with a size, as /dev paths (new lsblk: numbers and booleans)", () => {
    // The USB stick (removable), the DVD drive (rom) and zram (size 0, not a disk to install on) are left out.
    expect(parseLsblk(fixture("server-lsblk.json"))).toEqual([
      { name: "/dev/sda", sizeBytes: 480103981056n },
      { name: "/dev/sdb", sizeBytes: 480103981056n },
      { name: "/dev/nvme0n1", sizeBytes: 3840755982336n },
    ]);
  });

  it("are read from old lsblk too (everything a string); a read-only disk is left out", () => {
    expect(parseLsblk(fixture("qemu-lsblk.json"))).toEqual([
      { name: "/dev/sda", sizeBytes: 10737418240n },
      { name: "/dev/vda", sizeBytes: 21474836480n },
    ]);
    expect(() => parseLsblk("lsblk: unknown column")).toThrow(InventoryError);
  });
});

describe("NICs", () => {
  it("are the ethernet links that are no virtual device; a bond member keeps its permanent MAC", () => {
    expect(parseIpLinks(fixture("server-ip-link.json"))).toEqual([
      { name: "eno1", mac: "0c:c4:7a:ed:3e:c2", parentBus: "pci", lowerUp: true },
      { name: "eno2", mac: "0c:c4:7a:ed:3e:c3", parentBus: "pci", lowerUp: true },
      { name: "enp94s0f0", mac: "3c:ec:ef:10:20:31", parentBus: "pci", lowerUp: true },
    ]);
  });

  it("from an older ip without parentbus are candidates that /sys decides about", () => {
    expect(parseIpLinks(fixture("qemu-ip-link.json"))).toEqual([
      { name: "ens3", mac: "52:54:00:12:34:56", parentBus: undefined, lowerUp: true },
      { name: "eth0", mac: "52:54:00:12:34:57", parentBus: undefined, lowerUp: true },
    ]);
  });
});

describe("LLDP neighbours", () => {
  it("are read from several interfaces (a list), an interface with two neighbours, a neighbour without a name", () => {
    const n = parseLldpNeighbors(fixture("server-lldp.json"));
    // SONiC's port id is a local name, Cumulus' an ifname: both are the port; a port id that is a MAC gives way to the description.
    expect(Object.fromEntries(n)).toEqual({
      eno1: [{ hostname: "leaf01", port: "Ethernet4" }],
      eno2: [{ hostname: "leaf02", port: "swp5" }],
      enp94s0f0: [
        { hostname: "tor-mgmt", port: "Gi1/0/17" },
        { hostname: "", port: "52:54:00:aa:bb:cd" },
      ],
    });
  });

  it("are read from one interface (an object, not a list)", () => {
    expect(Object.fromEntries(parseLldpNeighbors(fixture("qemu-lldp.json")))).toEqual({ ens3: [{ hostname: "leaf01", port: "swp1" }] });
  });

  it("are none when lldpd has seen nothing", () => {
    expect(parseLldpNeighbors(fixture("lldp-none.json")).size).toBe(0);
    expect(parseLldpNeighbors('{"lldp":[{"interface":[]}]}').size).toBe(0);
  });
});

describe("GPUs", () => {
  it("are compute cards and GPU vendors' display controllers, not the BMC's VGA chip", () => {
    expect(parseLspciGpus(fixture("server-lspci.txt"))).toEqual([
      { vendor: "NVIDIA Corporation", model: "GA100 [A100 PCIe 40GB]" },
      { vendor: "Advanced Micro Devices, Inc. [AMD/ATI]", model: "Navi 21 [Radeon Pro W6800]" },
    ]);
    expect(parseLspciGpus("")).toEqual([]);
  });
});
