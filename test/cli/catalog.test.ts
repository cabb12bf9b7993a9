import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
const m = cli();
let run: (argv: string[], env?: Record<string, string>, stdin?: string) => ReturnType<typeof m.run>;

beforeAll(async () => {
  server = await startTestServer();
  run = (argv, env, stdin) => m.run(argv, { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken, ...env }, stdin);
});

const file = (name: string, text: string) => {
  const p = join(m.configHome, name);
  writeFileSync(p, text);
  return p;
};

describe("metalctl apply, update and edit", () => {
  it("creates every document of a multi-document file, and a second apply updates them", async () => {
    const f = file(
      "partitions.yaml",
      `id: fra1
name: Frankfurt 1
dnsServers: [1.1.1.1]
---
id: fra2
name: Frankfurt 2
labels: { tier: gold }
`,
    );
    const first = await run(["partition", "apply", "-f", f]);
    expect(first.stderr).toBe("");
    expect(first.stdout).toMatch(/^ID\s+NAME\s+DESCRIPTION\nfra1\s+Frankfurt 1\s*\nfra2\s+Frankfurt 2\s*\n$/);
    const f2 = file("partitions2.yaml", `id: fra1\nname: Frankfurt One\ndescription: renamed\n---\nid: fra2\nname: Frankfurt 2\n---\nid: fra3\n`);
    const second = await run(["partitions", "apply", "-f", f2, "-o", "json"]);
    const docs = JSON.parse(second.stdout) as { id: string; name?: string; description?: string; dnsServers?: string[]; meta: { version: string } }[];
    expect(docs.map((d) => [d.id, d.meta.version])).toEqual([
      ["fra1", "2"],
      ["fra2", "2"],
      ["fra3", "1"],
    ]);
    // Fields the document leaves out stay as they were.
    expect(docs[0]).toMatchObject({ name: "Frankfurt One", description: "renamed", dnsServers: ["1.1.1.1"] });

    const listed = await run(["partition", "list", "-o", "yaml"]);
    expect((parse(listed.stdout) as { id: string }[]).map((p) => p.id)).toEqual(["fra1", "fra2", "fra3"]);
    const wide = await run(["partition", "ls", "-o", "wide", "--sort-by", "name:desc", "--no-headers"]);
    expect(wide.stdout.split("\n")[0]).toMatch(/^fra1\s+Frankfurt One\s+renamed\s+\S*\s*1\.1\.1\.1/);
  });

  it("applies sizes, images and filesystem layouts, and reads them back", async () => {
    const f = file(
      "catalog.yaml",
      `id: c1-large
name: c1 large
constraints:
  - { type: SIZE_CONSTRAINT_TYPE_CORES, min: 8, max: 8 }
  - { type: SIZE_CONSTRAINT_TYPE_MEMORY, min: 34359738368, max: 34359738368 }
`,
    );
    expect((await run(["size", "apply", "-f", f])).stdout).toMatch(/c1-large\s+c1 large\s+8\s+32GiB/);
    const img = file("image.yaml", `id: ubuntu-24.4.20250101\nurl: http://images.example/ubuntu.tar\nfeatures: [IMAGE_FEATURE_MACHINE]\n`);
    expect((await run(["image", "create", "-f", img])).stdout).toMatch(/ubuntu-24\.4\.20250101\s+.*machine/);
    const layout = file(
      "layout.yaml",
      `id: c1-default
constraints: { sizes: [c1-large], images: { ubuntu: "*" } }
disks:
  - device: /dev/sda
    partitions: [{ number: 1, sizeMib: 512, gptType: GPT_TYPE_BOOT }, { number: 2, sizeMib: 0, gptType: GPT_TYPE_LINUX }]
filesystems:
  - { path: /boot/efi, device: /dev/sda1, format: FORMAT_VFAT }
  - { path: /, device: /dev/sda2, format: FORMAT_EXT4 }
`,
    );
    expect((await run(["fsl", "apply", "-f", layout])).code).toBe(0);
    const again = await run(["filesystemlayout", "apply", "-f", layout, "-o", "json"]);
    expect(JSON.parse(again.stdout)[0].meta.version).toBe("2");
    const tried = await run(["filesystemlayout", "try", "--size", "c1-large", "--image", "ubuntu-24.4.20250101"]);
    expect(tried.stdout).toMatch(/c1-default\s+.*\/boot\/efi \/dev\/sda1/);

    expect((await run(["size", "describe", "c1-large", "-o", "table"])).stdout).toMatch(/^ID\s+NAME.*\nc1-large\s+c1 large\s+8\s+32GiB\s*\n$/);
    const described = await run(["size", "describe", "c1-large"]);
    const doc = parse(described.stdout) as { id: string; constraints: unknown[] };
    expect(doc.id).toBe("c1-large");
    expect(doc.constraints).toHaveLength(2);
  });

  it("update -f refuses a stale version with exit code 5; apply writes over it", async () => {
    await run(["partition", "create", "--id", "ber1", "--name", "Berlin"]);
    const read = (await run(["partition", "describe", "ber1"])).stdout;
    await run(["partition", "apply", "-f", file("ber1.yaml", "id: ber1\ndescription: changed meanwhile\n")]);
    const stale = await run(["partition", "update", "-f", file("stale.yaml", read.replace("name: Berlin", "name: Berlin 1"))]);
    expect(stale.code).toBe(5);
    expect(stale.stderr).toMatch(/^aborted: partition "ber1" was changed by someone else/);
    const missing = await run(["partition", "update", "-f", file("nope.yaml", "id: nope\nname: x\n")]);
    expect(missing).toMatchObject({ code: 3, stderr: 'partition "nope" not found\n' });
    const invalid = await run(["size", "create", "-f", file("bad.yaml", "id: BAD ID!\n")]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/^invalid argument: /);
  });

  it("edit opens $EDITOR on the YAML and updates what was saved", async () => {
    await run(["partition", "create", "--id", "muc1", "--name", "Munich"]);
    const edited = await run(["partition", "edit", "muc1", "-o", "json"], { EDITOR: "sed -i s/Munich/München/" });
    expect(edited.stderr).toBe("");
    expect(JSON.parse(edited.stdout)[0]).toMatchObject({ id: "muc1", name: "München" });
    const unchanged = await run(["partition", "edit", "muc1"], { EDITOR: "true" });
    expect(unchanged).toMatchObject({ code: 0, stderr: 'partition "muc1" unchanged\n' });
    const sizeEdit = await run(["size", "edit", "c1-large", "-o", "json"], { EDITOR: "sed -i 's/name: c1 large/name: c1 huge/'" });
    expect(JSON.parse(sizeEdit.stdout)[0].name).toBe("c1 huge");
  });

  it("reads documents from stdin with -f -", async () => {
    const r = await run(["partition", "apply", "-f", "-", "--no-headers"], {}, "id: ham1\nname: Hamburg\n");
    expect(r.stdout).toMatch(/^ham1\s+Hamburg/);
  });
});

describe("metalctl contexts", () => {
  it("writes contexts to the XDG config file and uses the current one", async () => {
    const local = (argv: string[]) => m.run(argv, {});
    const added = await local(["context", "add", "lab", "--api-url", server.url, "--token", server.adminToken, "--project", "p-lab"]);
    expect(added.code).toBe(0);
    const path = join(m.configHome, "metalctl", "config.yaml");
    const config = parse(readFileSync(path, "utf8")) as { current: string; contexts: Record<string, { url: string; token: string; project: string }> };
    expect(config).toMatchObject({ current: "lab", contexts: { lab: { url: server.url, token: server.adminToken, project: "p-lab" } } });

    // No flags, no environment: the current context says where and who.
    const listed = await local(["partition", "list", "--no-headers"]);
    expect(listed.stderr).toBe("");
    expect(listed.stdout).toContain("fra1");
    const who = await local(["whoami"]);
    expect(who.stdout).toMatch(/^subject: /);
    expect(who.stdout).toContain("(context lab)");

    await local(["context", "add", "elsewhere", "--api-url", "http://127.0.0.1:1"]);
    expect((await local(["context", "use", "elsewhere"])).stdout).toBe('switched to context "elsewhere"\n');
    const down = await local(["partition", "list"]);
    expect(down.code).toBe(7);
    // --context picks another one for a single command; the environment overrides the file.
    expect((await local(["partition", "list", "--context", "lab", "--no-headers"])).stdout).toContain("fra1");
    expect((await m.run(["partition", "list", "--no-headers"], { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken })).stdout).toContain("fra1");
    expect((await local(["context", "use", "-"])).stdout).toBe('switched to context "lab"\n');
    const ctxs = await local(["context", "list", "--no-headers"]);
    expect(ctxs.stdout).toMatch(/^\*\s+lab\s+http:\/\/127\.0\.0\.1:\d+\s+p-lab\s+yes\n\s+elsewhere\s+http:\/\/127\.0\.0\.1:1\s*\n$/);
    expect((await local(["context", "use", "nope"])).code).toBe(2);

    const token = (await local(["token", "create", "--description", "ci", "--project-role", "p-lab=viewer", "--expires", "1h"])).stdout.trim();
    const login = await local(["login", "--token", token]);
    expect(login.stdout).toMatch(/^logged in as .+, token stored in context "lab"\n$/);
    const tokens = await m.run(["token", "list", "-o", "json"], { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken });
    expect((JSON.parse(tokens.stdout) as { description?: string }[]).some((t) => t.description === "ci")).toBe(true);
    // The stored viewer token may read but not write.
    expect((await local(["partition", "create", "--id", "x1"])).code).toBe(4);
  });

  it("prints version, health and a completion script", async () => {
    const v = await run(["version", "-o", "json"]);
    expect(JSON.parse(v.stdout)).toMatchObject({ client: { version: "0.1.0" }, server: { version: expect.any(String) } });
    const h = await run(["health"]);
    expect(h.stdout).toMatch(/^overall: healthy\n/);
    const c = await run(["completion", "bash"]);
    expect(c.stdout).toContain("complete -F _metalctl metalctl");
    expect(c.stdout).toContain("machine power reset");
    expect(c.stdout).toContain("network ip list");
  });
});
