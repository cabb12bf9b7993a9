import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { jsonLog, leveledJsonLog } from "../../edge/common/log.js";

/**
 * The edge daemons' JSON log lines pass the control plane's redaction rules:
 * a secret handed to a log call by mistake (a token field, a URL with a
 * token in its query, an error quoting a value) does not reach stderr.
 */
let written: string[] = [];

beforeEach(() => {
  written = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

const SECRET = "S3CRETedgelog";

describe("edge daemon log lines", () => {
  it("replace secret fields, cut URL queries and make errors safe, keeping the rest", () => {
    const err = Object.assign(new Error(`invalid input syntax for type inet: "${SECRET}-err"`), { code: "22P02", severity: "ERROR", detail: `Key (ip)=(${SECRET}-detail)` });
    jsonLog("boot answered", { machine: "m1", token: `${SECRET}-token`, bootScriptUrl: `http://pixie/boot?credential=${SECRET}-query`, nested: { consolePassword: `${SECRET}-pw` }, err });
    leveledJsonLog("warn", "session ended", { authorization: `Bearer ${SECRET}-bearer`, switch: "leaf01" });
    expect(written).toHaveLength(2);
    expect(written.join("")).not.toContain(SECRET);
    const [first, second] = written.map((l) => JSON.parse(l));
    expect(first).toMatchObject({ msg: "boot answered", machine: "m1", token: "[redacted]", bootScriptUrl: "http://pixie/boot?[redacted]", nested: { consolePassword: "[redacted]" } });
    expect(first.err).toMatchObject({ type: "Error", code: "22P02" });
    expect(typeof first.time).toBe("string");
    expect(second).toMatchObject({ level: "warn", msg: "session ended", authorization: "[redacted]", switch: "leaf01" });
  });

  it("writes one line per call, with no fields too", () => {
    jsonLog("metal-hammer run ended: kexec");
    expect(written).toHaveLength(1);
    expect(written[0]!.endsWith("\n")).toBe(true);
    expect(JSON.parse(written[0]!)).toMatchObject({ msg: "metal-hammer run ended: kexec" });
  });
});
