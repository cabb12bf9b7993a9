import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
const m = cli();
let run: (argv: string[]) => ReturnType<typeof m.run>;

beforeAll(async () => {
  server = await startTestServer();
  run = (argv) => m.run(argv, { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken });
});

const file = (name: string, text: string) => {
  const p = join(m.configHome, name);
  writeFileSync(p, text);
  return p;
};

describe("metalctl -f files", () => {
  it("refuses a misspelled field with its document and line, and creates nothing", async () => {
    const f = file("two.yaml", "id: ok1\nname: fine\n---\nid: typo1\nnmae: Frankfurt\n");
    const r = await run(["partition", "apply", "-f", f]);
    expect(r).toMatchObject({ code: 2, stdout: "", stderr: `${f}, document 2, line 5: unknown field "nmae" (did you mean "name"?)\n` });
    // Checked before the first request: the good document was not created either.
    expect((await run(["partition", "describe", "ok1"])).code).toBe(3);
    expect((await run(["partition", "describe", "typo1"])).code).toBe(3);

    const single = file("one.yaml", "id: fra9\nbootConfig:\n  imageUrl: http://x/initrd\n  kernelURL: http://x/kernel\n");
    const nested = await run(["partition", "create", "-f", single]);
    expect(nested).toMatchObject({ code: 2, stderr: `${single}, line 4: unknown field "bootConfig.kernelURL" (did you mean "kernelUrl"?)\n` });
    const far = file("far.yaml", "id: fra9\ncolour: blue\n");
    expect((await run(["partition", "apply", "-f", far])).stderr).toBe(
      `${far}, line 2: unknown field "colour"; the fields of Partition are id, name, description, bootConfig, mgmtServiceAddress, dnsServers, ntpServers, labels, meta\n`,
    );
  });

  it("refuses a value of the wrong type with exit code 2, its field path and line", async () => {
    const f = file("size.yaml", "id: s9\nconstraints:\n  - type: SIZE_CONSTRAINT_TYPE_CORES\n    min: many\n    max: 4\n");
    const r = await run(["size", "apply", "-f", f]);
    expect(r).toMatchObject({ code: 2, stderr: `${f}, line 4: constraints[0].min: expected a whole number, got the text "many"\n` });
    const list = file("list.yaml", "id: fra9\ndnsServers: 1.1.1.1\n");
    expect(await run(["partition", "apply", "-f", list])).toMatchObject({ code: 2, stderr: `${list}, line 2: dnsServers: expected a list, got the text "1.1.1.1"\n` });
    const enumValue = file("enum.yaml", "id: s9\nconstraints:\n  - { type: cores, min: 1, max: 2 }\n");
    const e = await run(["size", "apply", "-f", enumValue]);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(new RegExp(`^${enumValue}, line 3: constraints\\[0\\]\\.type: expected one of SIZE_CONSTRAINT_TYPE_CORES, .+, got the text "cores"\\n$`));
    const number = file("number.yaml", "id: fra9\nname: 42\n");
    expect(await run(["partition", "apply", "-f", number])).toMatchObject({ code: 2, stderr: `${number}, line 2: name: expected text (put it in quotes: "42"), got the number 42\n` });
    // None of these reached the server; a correct document still goes through.
    const good = file("good.yaml", "id: s9\nconstraints:\n  - { type: SIZE_CONSTRAINT_TYPE_CORES, min: 1, max: 2 }\n");
    expect(await run(["size", "apply", "-f", good])).toMatchObject({ code: 0, stderr: "" });
  });

  it("says a file is missing with exit code 2", async () => {
    const missing = join(m.configHome, "nope.yaml");
    expect(await run(["partition", "apply", "-f", missing])).toMatchObject({ code: 2, stdout: "", stderr: `cannot read ${missing}: no such file\n` });
    expect(await run(["size", "create", "-f", m.configHome])).toMatchObject({ code: 2, stderr: `cannot read ${m.configHome}: it is a directory\n` });
    const key = await run(["machine", "create", "--project", "p", "--partition", "p1", "--size", "s1", "--image", "debian-12", "--sshpublickey", `@${missing}`]);
    expect(key).toMatchObject({ code: 2, stderr: `cannot read ${missing}: no such file\n` });
  });

  it("accepts what describe -o yaml prints, meta and all", async () => {
    const f = file("p.yaml", "id: round1\nname: Round\nlabels: { a: b }\n");
    expect((await run(["partition", "apply", "-f", f])).code).toBe(0);
    const described = await run(["partition", "describe", "round1", "-o", "yaml"]);
    const back = file("back.yaml", described.stdout);
    expect(await run(["partition", "apply", "-f", back])).toMatchObject({ code: 0, stderr: "" });
  });
});
