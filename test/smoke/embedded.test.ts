import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/free-port.js";
import { scaled } from "../helpers/timeouts.js";

/** Starts the real control-plane binary (metal-api, without the lab) on embedded PGlite, and waits until it listens. */
async function startServer(dataDir: string, port: number): Promise<{ proc: ChildProcess; output: () => string }> {
  // The console gets a port of its own too, so a lab running on the default one does not collide.
  const consolePort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, METAL_DATA_DIR: dataDir, METAL_LISTEN: `127.0.0.1:${port}`, METAL_CONSOLE_LISTEN: `127.0.0.1:${consolePort}`, LOG_LEVEL: "info" };
  delete env.DATABASE_URL;
  delete env.MASTERDATA_DATABASE_URL;
  // The bundled binary, as users run it (bin/metal-api.js), not the sources through tsx.
  const proc = spawn(process.execPath, ["bin/metal-api.js"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    // Two cold starts on PGlite on a busy 2-core machine: generous, and the test gets its own timeout below.
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), scaled(120_000));
    const check = () => {
      if (out.includes("metal-api listening on")) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on("data", check);
    proc.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
  return { proc, output: () => out };
}

async function stop(proc: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  proc.kill("SIGTERM");
  return exited;
}

async function call(port: number, method: string, body: unknown, token?: string) {
  const res = await fetch(`http://127.0.0.1:${port}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

describe("embedded mode (PGlite), as npm start runs it", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it(
    "serves the API, keeps data and the admin token across a restart",
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "metal-smoke-"));
      dirs.push(dataDir);
      const port = await freePort();

      const first = await startServer(dataDir, port);
      const token = (await readFile(join(dataDir, "admin-token"), "utf8")).trim();
      // Never printed, not even on creation: only where it was written.
      expect(first.output()).not.toContain(token);
      expect(first.output()).toContain(`operator admin token written to ${join(dataDir, "admin-token")}`);
      const created = await call(port, "metal.admin.v1.PartitionService/Create", { id: "smoke-1", name: "smoke" }, token);
      expect(created.status).toBe(200);
      expect((await call(port, "metal.admin.v1.PartitionService/List", {})).status).toBe(401);
      expect(await stop(first.proc)).toBe(0);

      const second = await startServer(dataDir, port);
      try {
        expect((await readFile(join(dataDir, "admin-token"), "utf8")).trim()).toBe(token);
        expect(second.output()).not.toContain(token);
        const list = await call(port, "metal.admin.v1.PartitionService/List", {}, token);
        expect(list.status).toBe(200);
        expect(list.json.partitions.map((p: { id: string }) => p.id)).toEqual(["smoke-1"]);
      } finally {
        await stop(second.proc);
      }
    },
    scaled(300_000),
  );
});
