import { describe, expect, it } from "vitest";
import { type BootParams, formatBootParams, parseBootParams } from "../../edge/hammer/boot-params.js";

const JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
const params: BootParams = {
  machineId: "0e1d2c3b-0000-4000-8000-000000000001",
  partition: "fra-equ01",
  credential: JWT,
  credentialExpiresAt: new Date("2030-01-02T03:04:05Z"),
  cores: ["10.0.0.11:4150", "[fd00::12]:4150"],
};

describe("boot params on the kernel command line", () => {
  it("round-trip among the kernel's own parameters, which are ignored", () => {
    const text = formatBootParams(params);
    expect(text).toBe(`metal.machine=0e1d2c3b-0000-4000-8000-000000000001 metal.partition=fra-equ01 metal.credential=${JWT} metal.credential-expires=1893553445 metal.cores=10.0.0.11:4150,[fd00::12]:4150`);
    expect(parseBootParams(`BOOT_IMAGE=/vmlinuz console=ttyS0,115200n8 ip=dhcp metal.other=x ${text} quiet\n`)).toEqual(params);
  });

  it("take the last of a parameter given twice, and upper-case UUIDs as the machine's own", () => {
    const p = parseBootParams(`${formatBootParams(params)} metal.cores=10.0.0.13:4150`.replace("0e1d2c3b", "0E1D2C3B"));
    expect(p.cores).toEqual(["10.0.0.13:4150"]);
    expect(p.machineId).toBe(params.machineId);
  });

  it.each([
    ["no metal parameters at all", "console=ttyS0 quiet", "the kernel command line has no metal.machine=: metal-hammer runs from the discovery image pixie boots"],
    ["a missing credential", formatBootParams(params).replace(/metal\.credential=\S+/, ""), "has no metal.credential="],
    ["an empty core list", formatBootParams(params).replace(/metal\.cores=\S+/, "metal.cores=,"), "metal.cores must name at least one metal-core"],
    ["a core without a port", formatBootParams(params).replace("10.0.0.11:4150", "10.0.0.11"), 'metal.cores: "10.0.0.11" is not host:port'],
    ["a machine that is no UUID", formatBootParams(params).replace(params.machineId, "machine-1"), 'metal.machine must be the machine\'s UUID, not "machine-1"'],
    ["an expiry that is no number", formatBootParams(params).replace("1893553445", "tomorrow"), 'metal.credential-expires must be a time in seconds since 1970, not "tomorrow"'],
    ["a credential that is no JWT", formatBootParams(params).replace(JWT, "secret"), "metal.credential must be the machine credential BootService.Boot handed out"],
    ["a partition id of capitals", formatBootParams(params).replace("fra-equ01", "FRA"), 'metal.partition must be a partition id, not "FRA"'],
  ])("refuse %s with a message saying what", (_what, cmdline, message) => {
    expect(() => parseBootParams(cmdline)).toThrow(message);
  });

  it("never quote the credential in an error", () => {
    let message = "";
    try {
      parseBootParams(formatBootParams(params).replace(JWT, `${JWT}!`));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^metal\.credential must be/);
    expect(message).not.toContain("c2lnbmF0dXJl");
  });

  it("are not formatted when they would not read back", () => {
    expect(() => formatBootParams({ ...params, partition: "p 1" })).toThrow("metal.partition must be a partition id");
    expect(() => formatBootParams({ ...params, cores: [] })).toThrow("metal.cores must name at least one metal-core");
    expect(() => formatBootParams({ ...params, credentialExpiresAt: new Date(Number.NaN) })).toThrow("metal.credential-expires must be a time");
  });
});
