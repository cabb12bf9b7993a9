import { describe, expect, it } from "vitest";
import { globError, globMatch } from "../../../server/domain/glob.js";
import { type Constraint, constraintProblems, fits, type Hardware, matchSize, overlaps, ConstraintType as T } from "../../../server/domain/size.js";

const GiB = 2 ** 30;
const c = (type: T, min: number, max: number, identifier = ""): Constraint => ({ type, min, max, identifier });

describe("glob", () => {
  it.each([
    ["Intel*", "Intel(R) Xeon(R)", true],
    ["Intel*", "AMD EPYC", false],
    ["/dev/sd?", "/dev/sda", true],
    ["/dev/sd?", "/dev/sdaa", false],
    ["/dev/nvme[0-3]n1", "/dev/nvme2n1", true],
    ["/dev/nvme[!0-3]n1", "/dev/nvme2n1", false],
    ["a.b", "axb", false],
    ["", "anything", true],
  ])("%s matches %s: %s", (glob, value, expected) => {
    expect(globMatch(glob, value)).toBe(expected);
  });

  it("reports unbalanced brackets", () => {
    expect(globError("[abc")).toContain("without a closing");
    expect(globError("abc]")).toContain("without an opening");
    expect(globError("a[bc]*")).toBeUndefined();
  });
});

describe("constraint rules", () => {
  it.each([
    ["max below min", [c(T.Cores, 8, 4)], "constraints[0].max"],
    ["memory identifier", [c(T.Memory, 1, 2, "DIMM*")], "constraints[0].identifier"],
    ["gpu without identifier", [c(T.Gpu, 1, 1)], "gpu constraints need an identifier"],
    ["two cores", [c(T.Cores, 1, 2), c(T.Cores, 3, 4, "AMD*")], "constraints[1]"],
    ["two memory", [c(T.Memory, 1, 2), c(T.Memory, 3, 4)], "a second memory constraint"],
    ["same storage twice", [c(T.Storage, 1, 2, "/dev/sd*"), c(T.Storage, 3, 4, "/dev/sd*")], 'for "/dev/sd*"'],
    ["bad glob", [c(T.Storage, 1, 2, "/dev/[sd")], "without a closing"],
    ["no constraints", [], "at least one constraint"],
    ["unknown type", [c(9 as T, 1, 2)], "constraints[0].type"],
  ])("refuses %s", (_name, cs, message) => {
    const problems = constraintProblems("constraints", cs);
    expect(problems.map((p) => `${p.path}: ${p.message}`).join("\n")).toContain(message);
  });

  it("accepts a complete, consistent size", () => {
    expect(constraintProblems("constraints", [c(T.Cores, 8, 8), c(T.Memory, 32 * GiB, 32 * GiB), c(T.Storage, 1, 1e12, "/dev/sd*"), c(T.Storage, 1, 1e12, "/dev/nvme*"), c(T.Gpu, 1, 1, "H100")])).toEqual([]);
  });
});

describe("overlaps", () => {
  const small = [c(T.Cores, 4, 8), c(T.Memory, 8 * GiB, 16 * GiB)];
  it.each([
    ["identical", small, true],
    ["intersecting ranges", [c(T.Cores, 8, 16), c(T.Memory, 16 * GiB, 32 * GiB)], true],
    ["disjoint cores", [c(T.Cores, 9, 16), c(T.Memory, 8 * GiB, 16 * GiB)], false],
    ["disjoint memory", [c(T.Cores, 4, 8), c(T.Memory, 17 * GiB, 32 * GiB)], false],
    ["an extra gpu constraint", [...small, c(T.Gpu, 1, 1, "H100")], false],
    ["other cpu identifier", [c(T.Cores, 4, 8, "AMD*"), c(T.Memory, 8 * GiB, 16 * GiB)], false],
  ])("%s: %s", (_name, other, expected) => {
    expect(overlaps(small, other)).toBe(expected);
    expect(overlaps(other, small)).toBe(expected);
  });
});

describe("matching hardware", () => {
  const hw: Hardware = {
    cpus: [
      { model: "Intel Xeon", cores: 8 },
      { model: "Intel Xeon", cores: 8 },
    ],
    memoryBytes: 64 * GiB,
    disks: [
      { name: "/dev/sda", sizeBytes: 480e9 },
      { name: "/dev/sdb", sizeBytes: 480e9 },
    ],
    gpus: [],
  };
  const base = { id: "c1-large", constraints: [c(T.Cores, 16, 16, "Intel*"), c(T.Memory, 64 * GiB, 64 * GiB), c(T.Storage, 900e9, 1000e9, "/dev/sd*")] };

  it("fits when every constraint is met and every part is counted", () => {
    expect(fits(base, hw)).toBe(true);
  });

  it("does not fit when a part is not covered", () => {
    expect(fits(base, { ...hw, disks: [...hw.disks, { name: "/dev/nvme0n1", sizeBytes: 1e12 }] })).toBe(false);
    expect(fits(base, { ...hw, gpus: [{ model: "H100" }] })).toBe(false);
    expect(fits(base, { ...hw, cpus: [...hw.cpus, { model: "AMD EPYC", cores: 8 }] })).toBe(false);
  });

  it("does not fit out of range", () => {
    expect(fits(base, { ...hw, memoryBytes: 32 * GiB })).toBe(false);
  });

  it("names the one matching size, else unknown", () => {
    const gpu = { id: "g1", constraints: [...base.constraints, c(T.Gpu, 1, 1, "H100")] };
    expect(matchSize([base, gpu], hw)).toBe("c1-large");
    expect(matchSize([base, gpu], { ...hw, gpus: [{ model: "H100" }] })).toBe("g1");
    expect(matchSize([base, { ...base, id: "twin" }], hw)).toBe("unknown");
    expect(matchSize([], hw)).toBe("unknown");
  });
});
