import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { knownHostsLines, sshFingerprint, writeKnownHosts } from "../../edge/lab/console-host-key.js";
import { writeMetalctlContexts } from "../../edge/lab/metalctl-context.js";
import { checkPortsFree, LabStartError, listenError } from "../../edge/lab/ports.js";
import { countUp, describeUp } from "../../edge/lab/progress.js";
import { type Machine, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { generateEd25519 } from "../../server/console/host-key.js";

describe("metal-lab start-up pieces", () => {
  it("known_hosts lines in the form ssh looks up, and the fingerprint ssh-keygen prints", async () => {
    const key = generateEd25519().public.trim();
    const [type, blob] = key.split(/\s+/);
    expect(knownHostsLines("127.0.0.1:5222", key)).toEqual([`[127.0.0.1]:5222 ${type} ${blob}`]);
    expect(knownHostsLines("[::1]:5222", key)).toEqual([`[::1]:5222 ${type} ${blob}`]);
    expect(knownHostsLines("0.0.0.0:22", key)).toEqual([`127.0.0.1 ${type} ${blob}`, `localhost ${type} ${blob}`]);
    const file = join(mkdtempSync(join(tmpdir(), "lab-kh-")), "known_hosts");
    await writeKnownHosts(file, knownHostsLines("127.0.0.1:5222", key));
    expect(execFileSync("ssh-keygen", ["-l", "-f", file], { encoding: "utf8" })).toContain(sshFingerprint(key));
  });

  it("a taken port is one sentence naming the setting; other errors are left alone", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const address = `127.0.0.1:${(taken.address() as { port: number }).port}`;
    try {
      const err = await checkPortsFree([{ what: "the API", address, setting: "--listen / METAL_LISTEN" }]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LabStartError);
      expect((err as Error).message).toBe(`the API on ${address}: the address is in use (another metal-lab?); stop that, or choose another with --listen / METAL_LISTEN`);
    } finally {
      taken.close();
    }
    expect(listenError({ what: "x", address: "a:1", setting: "--s" }, new Error("boom"))).toBeUndefined();
    await checkPortsFree([{ what: "any", address: "127.0.0.1:0", setting: "--s" }]);
  });

  it("keeps the user's choice of current context and every context it does not own", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "lab-ctx-")), "config.yaml");
    const ctx = { url: "http://127.0.0.1:1", token: "t" };
    await writeMetalctlContexts(file, "lab", { lab: ctx, "lab-project": { ...ctx, project: "p" } });
    expect(parse(readFileSync(file, "utf8")).current).toBe("lab");
    const doc = parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...doc, current: "lab-project", previous: "lab", contexts: { ...doc.contexts, mine: { url: "http://x" } } }));
    await writeMetalctlContexts(file, "lab", { lab: { ...ctx, token: "new" }, "lab-project": { ...ctx, project: "p" } });
    const after = parse(readFileSync(file, "utf8"));
    expect(after.current).toBe("lab-project");
    expect(after.previous).toBe("lab");
    expect(after.contexts.mine).toEqual({ url: "http://x" });
    expect(after.contexts.lab.token).toBe("new");
  });

  it("counts a free machine ready when it waits in the pool and its last event says Waiting, an allocated one when it phoned home", () => {
    const m = (id: string, waiting: boolean, last: T, allocated = false) => ({ id, waiting, allocation: allocated ? {} : undefined, events: { log: [{ type: last }] } }) as unknown as Machine;
    const ids = new Set(["a", "b", "c", "d"]);
    const up = countUp([m("a", true, T.WAITING), m("b", true, T.REGISTERING), m("c", false, T.PHONED_HOME, true), m("d", false, T.WAITING), m("x", true, T.WAITING)], ids);
    expect(up).toEqual({ total: 4, waiting: 1, allocated: 1 });
    expect(describeUp(up)).toBe("2/4 machines up (1 waiting for allocation, 1 allocated and phoned home)");
    expect(describeUp({ total: 3, waiting: 3, allocated: 0 })).toBe("3/3 machines waiting for allocation");
  });
});
