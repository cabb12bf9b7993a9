import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
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
});
