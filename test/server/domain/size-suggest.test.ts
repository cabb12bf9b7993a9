import { describe, expect, it } from "vitest";
import { globMatch } from "../../../server/domain/glob.js";
import { constraintProblems, fits, type Hardware, matchSize, ConstraintType as T } from "../../../server/domain/size.js";
import { escapeGlob, globCovering, longestCommonPrefix, suggestConstraints } from "../../../server/domain/size-suggest.js";

const GiB = 2 ** 30;

const hw = (over: Partial<Hardware> = {}): Hardware => ({
  cpus: [{ model: "Intel(R) Xeon(R) Gold 6338", cores: 32 }],
  memoryBytes: 256 * GiB,
  disks: [{ name: "/dev/sda", sizeBytes: 480e9 }],
  gpus: [],
  ...over,
});

describe("glob helpers", () => {
  it.each([
    [["Intel Xeon Gold", "Intel Xeon Silver"], "Intel Xeon "],
    [["/dev/sda", "/dev/sdb", "/dev/nvme0n1"], "/dev/"],
    [["AMD", "Intel"], ""],
    [["same"], "same"],
    [[], ""],
  ])("longest common prefix of %j is %j", (values, prefix) => {
    expect(longestCommonPrefix(values)).toBe(prefix);
  });

  it("escapes glob metacharacters so a literal matches only itself", () => {
    const odd = "GPU [rev*2]?";
    expect(globMatch(escapeGlob(odd), odd)).toBe(true);
    expect(globMatch(escapeGlob(odd), "GPU [rev12]x")).toBe(false);
    expect(constraintProblems("c", [{ type: T.Gpu, min: 1, max: 1, identifier: escapeGlob(odd) }])).toEqual([]);
  });

  it("covers one value exactly and several by their common prefix", () => {
    expect(globCovering(["/dev/sda", "/dev/sda"])).toBe("/dev/sda");
    expect(globCovering(["/dev/sda", "/dev/sdb"])).toBe("/dev/sd*");
    expect(globCovering(["AMD EPYC", "Intel Xeon"])).toBe("*");
  });
});

describe("size suggestion", () => {
  it("sums cores and disks, takes memory as is, and counts GPUs per model", () => {
    const machine = hw({
      cpus: [
        { model: "Intel(R) Xeon(R) Gold 6338", cores: 32 },
        { model: "Intel(R) Xeon(R) Gold 6342", cores: 24 },
      ],
      disks: [
        { name: "/dev/nvme0n1", sizeBytes: 1e12 },
        { name: "/dev/nvme1n1", sizeBytes: 2e12 },
      ],
      gpus: [{ model: "NVIDIA H100" }, { model: "NVIDIA A100" }, { model: "NVIDIA H100" }],
    });
    expect(suggestConstraints(machine)).toEqual([
      { type: T.Cores, min: 56, max: 56, identifier: "Intel(R) Xeon(R) Gold 63*" },
      { type: T.Memory, min: 256 * GiB, max: 256 * GiB, identifier: "" },
      { type: T.Storage, min: 3e12, max: 3e12, identifier: "/dev/nvme*" },
      { type: T.Gpu, min: 1, max: 1, identifier: "NVIDIA A100" },
      { type: T.Gpu, min: 2, max: 2, identifier: "NVIDIA H100" },
    ]);
  });

  it("leaves out kinds of hardware the machine does not have, but never memory", () => {
    expect(suggestConstraints(hw({ cpus: [], disks: [] }))).toEqual([{ type: T.Memory, min: 256 * GiB, max: 256 * GiB, identifier: "" }]);
  });

  const machines: [string, Hardware][] = [
    ["one CPU, one disk", hw()],
    [
      "mixed CPU vendors",
      hw({
        cpus: [
          { model: "AMD EPYC 7763", cores: 64 },
          { model: "Intel Xeon", cores: 8 },
        ],
      }),
    ],
    ["glob characters in names", hw({ cpus: [{ model: "CPU*[x]", cores: 4 }], disks: [{ name: "/dev/disk?", sizeBytes: 1 }], gpus: [{ model: "G[1]" }] })],
    ["a GPU without model among others", hw({ gpus: [{ model: "" }, { model: "NVIDIA L4" }, { model: "NVIDIA L4" }] })],
    [
      "disks with unrelated names",
      hw({
        disks: [
          { name: "/dev/sda", sizeBytes: 1e11 },
          { name: "nvme0", sizeBytes: 2e11 },
        ],
      }),
    ],
  ];

  it.each(machines)("%s: the machine fits its suggestion, which is a valid size", (_name, machine) => {
    const constraints = suggestConstraints(machine);
    expect(constraintProblems("constraints", constraints)).toEqual([]);
    expect(fits({ id: "new", constraints }, machine)).toBe(true);
    expect(matchSize([{ id: "new", constraints }], machine)).toBe("new");
  });

  it("fits only the machine's own amounts: one more core or one GPU less does not match", () => {
    const machine = hw({ gpus: [{ model: "NVIDIA L4" }] });
    const size = { id: "new", constraints: suggestConstraints(machine) };
    expect(fits(size, { ...machine, cpus: [{ model: machine.cpus[0]!.model, cores: 33 }] })).toBe(false);
    expect(fits(size, { ...machine, gpus: [] })).toBe(false);
    expect(fits(size, { ...machine, disks: [...machine.disks, { name: "/dev/sdb", sizeBytes: 1 }] })).toBe(false);
  });
});
