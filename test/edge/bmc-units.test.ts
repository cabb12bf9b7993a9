import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { identityMismatch, parseAddress } from "../../edge/bmc/adapter.js";
import { CommandStore } from "../../edge/bmc/command-store.js";
import { IpmiAdapter, ipmitoolArgs, parseFru, parseGuid, parsePowerStatus, type Runner } from "../../edge/bmc/ipmi.js";
import { activeLeases, formatLeases, inCidr, parseLeases } from "../../edge/bmc/leases.js";

const LEASES = `# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3
authoring-byte-order little-endian;
server-duid "\\000\\001\\000\\001,\\261";

failover peer "bmc" state {
  my state normal at 3 2026/11/25 09:00:00;
}

lease 10.1.0.7 {
  starts 3 2026/11/25 10:00:00;
  ends 3 2026/11/25 12:00:00;
  cltt 3 2026/11/25 10:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet aa:bb:cc:00:00:07;
  uid "\\001\\252\\273\\314\\000\\000\\007";
  set vendor-class-identifier = "udhcp 1.30.1";
  client-hostname "bmc-7";
}
lease 10.1.0.8 {
  starts 3 2026/11/25 09:00:00;
  ends 3 2026/11/25 09:30:00;
  binding state active;
  hardware ethernet aa:bb:cc:00:00:08;
}
lease 10.1.0.9 {
  starts 3 2026/11/25 10:00:00;
  ends never;
  binding state free;
  hardware ethernet aa:bb:cc:00:00:09;
}
# the BMC of .7 moved to another address later; the newest lease wins
lease 10.1.0.17 {
  starts epoch 1795601400; # 2026/11/25 10:10:00
  ends never;
  binding state active;
  hardware ethernet AA:BB:CC:0:0:7;
}
lease 192.168.9.1 {
  starts 3 2026/11/25 10:00:00;
  ends never;
  hardware ethernet aa:bb:cc:00:00:99;
}
lease 10.1.0.50 {
  starts 3 2026/11/25 10:00:00;
  hardware ethernet aa:bb:cc:00:00:50;
`;

describe("lease file", () => {
  const now = new Date("2026-11-25T11:00:00Z");

  it("parses lease blocks, skips other blocks and a block cut short at the end", () => {
    const all = parseLeases(LEASES);
    expect(all.map((l) => l.ip)).toEqual(["10.1.0.7", "10.1.0.8", "10.1.0.9", "10.1.0.17", "192.168.9.1"]);
    expect(all[0]).toEqual({
      ip: "10.1.0.7",
      mac: "aa:bb:cc:00:00:07",
      starts: new Date("2026-11-25T10:00:00Z"),
      ends: new Date("2026-11-25T12:00:00Z"),
      state: "active",
      hostname: "bmc-7",
    });
    expect(all[2]!.ends).toBeUndefined();
    expect(all[3]).toMatchObject({ mac: "aa:bb:cc:00:00:07", starts: new Date("2026-11-25T10:10:00Z") });
  });

  it("keeps per MAC the newest lease, active and unexpired, filtered by CIDR and ignored MACs", () => {
    const all = parseLeases(LEASES);
    expect(activeLeases(all, now).map((l) => l.ip)).toEqual(["10.1.0.17", "192.168.9.1"]);
    expect(activeLeases(all, now, { allowedCidrs: ["10.1.0.0/24"] }).map((l) => l.ip)).toEqual(["10.1.0.17"]);
    expect(activeLeases(all, now, { ignoreMacs: ["AA:BB:CC:00:00:07"] }).map((l) => l.ip)).toEqual(["192.168.9.1"]);
    // Before the lease of .8 ran out it counted.
    expect(activeLeases(all, new Date("2026-11-25T09:10:00Z")).map((l) => l.ip)).toContain("10.1.0.8");
  });

  it("round-trips what the simulation writes", () => {
    const leases = [{ ip: "10.1.0.1", mac: "0c:c4:7a:00:00:01", starts: new Date("2026-11-25T10:00:00Z"), ends: undefined, state: "active", hostname: "b1" }];
    expect(parseLeases(formatLeases(leases))).toEqual(leases);
  });

  it("matches CIDRs", () => {
    expect(inCidr("10.1.0.7", "10.1.0.0/24")).toBe(true);
    expect(inCidr("10.1.1.7", "10.1.0.0/24")).toBe(false);
    expect(inCidr("10.1.1.7", "0.0.0.0/0")).toBe(true);
    expect(inCidr("garbage", "10.0.0.0/8")).toBe(false);
  });
});

describe("command store", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs an id once, keeps its result across a restart, and fails one interrupted mid-run instead of running it again", async () => {
    dir = await mkdtemp(join(tmpdir(), "bmc-store-"));
    const file = join(dir, "state", "commands.json");
    const store = await CommandStore.open(file);
    expect(await store.start("c1")).toBe(true);
    expect(await store.start("c1")).toBe(false);
    await store.finish("c1", true, "Chassis Power Control: Reset");
    expect(await store.start("c2")).toBe(true);
    // The agent dies while c2 runs.
    const reopened = await CommandStore.open(file);
    expect(reopened.get("c1")).toMatchObject({ state: "finished", ok: true, result: "Chassis Power Control: Reset" });
    expect(reopened.get("c2")).toMatchObject({ state: "finished", ok: false });
    expect(reopened.get("c2")!.result).toMatch(/interrupted/);
    expect(await reopened.start("c2")).toBe(false);
    expect(JSON.parse(await readFile(file, "utf8")).version).toBe(1);
  });

  it("forgets old records", async () => {
    dir = await mkdtemp(join(tmpdir(), "bmc-store-"));
    const file = join(dir, "commands.json");
    const store = await CommandStore.open(file, { keepMs: 1000, maxRecords: 2 });
    await store.start("a", 0);
    await store.finish("a", true, "", 0);
    await store.start("b", 5000);
    await store.finish("b", true, "", 5000);
    expect(store.get("a")).toBeUndefined();
    for (const id of ["c", "d"]) {
      await store.start(id, 5001);
      await store.finish(id, true, "", 5001);
    }
    expect(store.size).toBe(2);
    expect((await CommandStore.open(file)).get("b")).toBeUndefined();
  });

  it("refuses a state file it does not understand", async () => {
    dir = await mkdtemp(join(tmpdir(), "bmc-store-"));
    const file = join(dir, "commands.json");
    await writeFile(file, JSON.stringify({ version: 99, commands: {} }));
    await expect(CommandStore.open(file)).rejects.toThrow(/version 99/);
  });
});

describe("ipmitool", () => {
  const target = { host: "10.1.0.7", port: 623, user: "ADMIN", password: "s3cret", interface: "lanplus" };

  it("builds arguments with the password in the environment, not on the command line", () => {
    const { args, env } = ipmitoolArgs(target, ["chassis", "power", "status"]);
    expect(args).toEqual(["-I", "lanplus", "-H", "10.1.0.7", "-p", "623", "-U", "ADMIN", "-E", "chassis", "power", "status"]);
    expect(args).not.toContain("s3cret");
    expect(env).toEqual({ IPMI_PASSWORD: "s3cret" });
    expect(ipmitoolArgs(target, ["mc", "info"], { cipherSuite: 3 }).args.slice(0, 4)).toEqual(["-I", "lanplus", "-C", "3"]);
  });

  it("maps every command to its ipmitool words", async () => {
    const calls: string[] = [];
    const run: Runner = async (_p, args) => (calls.push(args.slice(9).join(" ")), "Chassis Power Control: Up/On\n");
    const ipmi = new IpmiAdapter(run);
    for (const c of ["POWER_ON", "POWER_OFF", "RESET", "CYCLE", "BOOT_FROM_BIOS", "BOOT_FROM_DISK", "BOOT_FROM_PXE", "LED_ON", "LED_OFF"] as const) {
      await ipmi.execute(target, c);
    }
    expect(calls).toEqual([
      "chassis power on",
      "chassis power off",
      "chassis power reset",
      "chassis power cycle",
      "chassis bootdev bios",
      "chassis bootdev disk",
      "chassis bootdev pxe",
      "chassis identify force",
      "chassis identify 0",
    ]);
  });

  it("reads GUID, firmware, power and FRU data", async () => {
    const out: Record<string, string> = {
      "mc guid": "System GUID  : 4C4C4544-0042-3510-8052-B4C04F4E4D32\nTimestamp    : 01/01/1970\n",
      "mc info": "Device ID                 : 32\nFirmware Revision         : 3.45\nIPMI Version              : 2.0\n",
      "chassis power status": "Chassis Power is on\n",
      "fru print":
        "FRU Device Description : Builtin FRU Device (ID 0)\n Chassis Type          : Rack Mount Chassis\n Chassis Serial        : CS-7\n Board Mfg             : Supermicro\n Product Serial        : PS-7\n\nFRU Device Description : PSU (ID 1)\n Product Serial        : PSU-1\n",
    };
    const ipmi = new IpmiAdapter(async (_p, args) => out[args.slice(9).join(" ")] ?? "");
    expect(await ipmi.query(target)).toEqual({
      uuid: "4c4c4544-0042-3510-8052-b4c04f4e4d32",
      firmware: "3.45",
      powerState: "ON",
      fru: { chassis_type: "Rack Mount Chassis", chassis_serial: "CS-7", board_mfg: "Supermicro", product_serial: "PS-7" },
    });
    expect(parsePowerStatus("Chassis Power is off")).toBe("OFF");
    expect(parsePowerStatus("Error: Unable to establish")).toBe("UNKNOWN");
    expect(parseGuid("System GUID : not-a-guid")).toBe("");
    expect(parseFru("")).toEqual({});
  });

  it("identifies the machine behind a BMC with one call, and tells a mismatch with both UUIDs", async () => {
    const calls: string[] = [];
    const ipmi = new IpmiAdapter(async (_p, args) => {
      calls.push(args.slice(9).join(" "));
      return "System GUID  : 4C4C4544-0042-3510-8052-B4C04F4E4D32\n";
    });
    expect(await ipmi.identify(target)).toBe("4c4c4544-0042-3510-8052-b4c04f4e4d32");
    expect(calls).toEqual(["mc guid"]);
    await expect(new IpmiAdapter(async () => "System GUID : not-a-guid\n").identify(target)).rejects.toThrow(/reports no system GUID/);
    const own = "4c4c4544-0042-3510-8052-b4c04f4e4d32";
    const other = "00000000-0000-4000-8000-000000000001";
    expect(identityMismatch(own.toUpperCase(), own, "10.1.0.7:623")).toBeUndefined();
    expect(identityMismatch(own, other, "10.1.0.7:623")).toBe(`the BMC at 10.1.0.7:623 reports machine ${other}, expected machine ${own}`);
    expect(identityMismatch(own, "", "10.1.0.7:623")).toContain("(no UUID)");
  });

  it("parses BMC addresses", () => {
    expect(parseAddress("10.1.0.7:6230")).toEqual({ host: "10.1.0.7", port: 6230 });
    expect(parseAddress("10.1.0.7")).toEqual({ host: "10.1.0.7", port: 623 });
    expect(parseAddress("[2001:db8::7]:624")).toEqual({ host: "2001:db8::7", port: 624 });
  });
});
