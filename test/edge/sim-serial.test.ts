import { Duplex } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SimBmcs, SimSerialConsole } from "../../edge/sim/bmc.js";

const text = (chunks: Uint8Array[]) => chunks.map((c) => new TextDecoder().decode(c)).join("");
const target = (ip: string) => ({ host: ip, port: 623, user: "ADMIN", password: "ADMIN", interface: "lanplus" });

describe("simulated serial console", () => {
  it("prints a boot log, echoes and answers; every attachment gets the scrollback; a reset boots again", async () => {
    const sims = new SimBmcs();
    const m = sims.add({ uuid: "11111111-2222-3333-4444-555555555555", ip: "10.0.0.1", mac: "aa:bb:cc:00:00:01" });
    const c = await sims.openConsole(target("10.0.0.1"), m.uuid);
    const out: Uint8Array[] = [];
    c.onData((d) => out.push(d));
    expect(text(out)).toMatch(/Welcome to metal sim\r\nroot@sim-11111111:~# $/);
    c.write(new TextEncoder().encode("echo hi\rnope\r"));
    expect(text(out)).toContain("echo hi\r\nhi\r\nroot@sim-11111111:~# nope\r\n-sh: nope: not found\r\n");
    await sims.execute(target("10.0.0.1"), "RESET");
    expect(text(out).split("Welcome to metal sim").length).toBe(3);
    c.close();
    expect(m.serial).toMatchObject({ opened: 1, closed: 1, attachments: 0 });
    await expect(sims.openConsole(target("10.0.0.1"), "99999999-2222-3333-4444-555555555555")).rejects.toThrow(/belongs to machine/);
  });

  it("carries a simulated machine's own console stream when given one", () => {
    let log = "SimBIOS\r\n";
    const typed: string[] = [];
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        typed.push(chunk.toString());
        done();
      },
    });
    const serial = new SimSerialConsole("m", { stream, log: () => log });
    const a = serial.attach();
    const out: Uint8Array[] = [];
    a.onData((d) => out.push(d));
    expect(text(out)).toBe("SimBIOS\r\n");
    log += "login: ";
    stream.push("login: ");
    a.write(new TextEncoder().encode("root\n"));
    expect(typed).toEqual(["root\n"]);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(text(out)).toBe("SimBIOS\r\nlogin: ");
        let reason: string | undefined;
        a.onClose((r) => (reason = r));
        serial.hangup();
        expect(reason).toMatch(/SOL session closed/);
        resolve();
      }),
    );
  });

  it("a reset starts a new scrollback: a later attachment never gets what the previous boot printed", async () => {
    const sims = new SimBmcs();
    const m = sims.add({ uuid: "11111111-2222-3333-4444-666666666666", ip: "10.0.0.2", mac: "aa:bb:cc:00:00:02" });
    const a = await sims.openConsole(target("10.0.0.2"), m.uuid);
    a.write(new TextEncoder().encode("echo previous-tenant-secret\r"));
    a.close();
    expect(m.serial.scrollback).toContain("previous-tenant-secret");
    await sims.execute(target("10.0.0.2"), "RESET");
    const b = await sims.openConsole(target("10.0.0.2"), m.uuid);
    const out: Uint8Array[] = [];
    b.onData((d) => out.push(d));
    expect(text(out)).toMatch(/^\r\nSimBIOS 1\.0\r\n[\s\S]*Welcome to metal sim\r\nroot@sim-11111111:~# $/);
    expect(text(out)).not.toContain("previous-tenant-secret");
    b.close();
  });
});

describe("production times of simulated console output", () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const at = (iso: string) => vi.setSystemTime(new Date(iso));

  it("replayed scrollback carries the time it was printed, live output the time it is printed", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    at("2026-01-01T00:00:00Z");
    const serial = new SimSerialConsole("m");
    serial.boot();
    at("2026-01-01T00:00:05Z");
    serial.print("later\r\n");
    at("2026-01-01T01:00:00Z");
    const c = serial.attach();
    const got: { text: string; at: string }[] = [];
    c.onData((d, producedAt) => got.push({ text: new TextDecoder().decode(d), at: producedAt.toISOString() }));
    serial.print("live");
    expect(got.map((g) => g.at)).toEqual(["2026-01-01T00:00:00.000Z", "2026-01-01T00:00:05.000Z", "2026-01-01T01:00:00.000Z"]);
    expect(got.map((g) => g.text)).toEqual([expect.stringContaining("SimBIOS"), "later\r\n", "live"]);
  });

  it("with a line, the machine's log is replayed in the pieces the BMC saw, with their times; a beginning it never saw counts as printed at an unknown (the oldest) time", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const stream = new Duplex({ read() {}, write: (_c, _e, done) => done() });
    // The machine printed this before the BMC listened (a console server started later).
    let log = "before the BMC\r\n";
    at("2026-01-01T00:00:00Z");
    const serial = new SimSerialConsole("m", { stream, log: () => log });
    const said = async (s: string) => {
      log += s;
      stream.push(s);
      await new Promise((r) => setImmediate(r));
    };
    at("2026-01-01T00:00:10Z");
    await said("boot\r\n");
    at("2026-01-01T00:00:20Z");
    await said("login: ");
    at("2026-01-01T00:01:00Z");
    const c = serial.attach();
    const got: { text: string; at: string }[] = [];
    c.onData((d, producedAt) => got.push({ text: new TextDecoder().decode(d), at: producedAt.toISOString() }));
    expect(got).toEqual([
      { text: "before the BMC\r\n", at: "1970-01-01T00:00:00.000Z" },
      { text: "boot\r\n", at: "2026-01-01T00:00:10.000Z" },
      { text: "login: ", at: "2026-01-01T00:00:20.000Z" },
    ]);
    // The machine's log begins inside a piece the BMC saw (the log is capped): that piece keeps its time.
    log = "gin: ";
    const d = serial.attach();
    const got2: string[] = [];
    d.onData((_d, producedAt) => got2.push(producedAt.toISOString()));
    expect(got2).toEqual(["2026-01-01T00:00:20.000Z"]);
  });
});
