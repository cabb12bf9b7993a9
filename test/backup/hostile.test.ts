import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SettingsError } from "../../client/settings.js";
import { prune } from "../../server/backup/backup.js";
import { BackupKeyError, deriveKeys, keyCheck, manifestMac, parseKey } from "../../server/backup/crypto.js";
import { connectionOf } from "../../server/backup/engines.js";
import { type Manifest, macInput, parseManifest, partFile } from "../../server/backup/manifest.js";
import { RestoreRefused, restoreBackup, verifyBackup } from "../../server/backup/restore.js";
import { type BackupSettings, type DatabaseLocation, loadBackupSettings } from "../../server/backup/settings.js";
import { DirStore, S3Store, type Store, StoreError } from "../../server/backup/store.js";
import { createLogger } from "../../server/logger.js";
import { createScratchDatabase } from "../helpers/postgres.js";

/** A party that can write into the backup directory or the bucket, or answer for the S3 service: what it must not achieve. */

const ID = "20261205T191632Z-3fa9";
const OTHER = "20261205T191633Z-3fa9";
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "metal-backup-hostile-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const fresh = async (name: string) => {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
};

const plainManifest = (id: string, engine: "postgres" | "pglite" = "postgres"): Manifest => ({
  format: "metal-backup",
  version: 1,
  id,
  createdAt: "2026-12-05T19:16:32.000Z",
  producer: "0.1.0",
  encryption: null,
  parts: (["metal", "masterdata"] as const).map((database) => ({
    database,
    engine,
    format: engine === "postgres" ? "pg_dump-custom" : "pglite-datadir-tgz",
    file: partFile(database, engine, false),
    size: 5,
    sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    migrations: { count: 0, last: 0 },
    tables: 1,
    serverVersion: "16",
  })),
});

describe("a backup directory with planted symbolic links", () => {
  it("neither lists nor removes through a link under a backup's name", async () => {
    const store = await fresh("links-dir");
    const elsewhere = await fresh("elsewhere");
    await writeFile(join(elsewhere, "manifest.json"), "precious");
    await writeFile(join(elsewhere, "data"), "precious");
    await symlink(elsewhere, join(store, ID));
    await symlink(elsewhere, join(store, `.${OTHER}.partial`));
    const s = new DirStore(store);
    expect(await s.list()).toEqual([]);
    await s.remove(ID);
    await s.remove(OTHER);
    expect((await readdir(elsewhere)).sort()).toEqual(["data", "manifest.json"]);
  });

  it("refuses a manifest or a part that is a link, and reads nothing through it", async () => {
    const store = await fresh("links-files");
    const secret = join(root, "secret.txt");
    await writeFile(secret, "hello");
    await mkdir(join(store, ID));
    await symlink(secret, join(store, ID, "manifest.json"));
    const s = new DirStore(store);
    expect(await s.list()).toEqual([{ id: ID, complete: false }]);
    await expect(s.readManifest(ID)).rejects.toThrow(StoreError);
    await rm(join(store, ID, "manifest.json"));
    await writeFile(join(store, ID, "manifest.json"), JSON.stringify(plainManifest(ID)));
    await symlink(secret, join(store, ID, "metal.dump"));
    const scratch = await fresh("links-scratch");
    await expect(verifyBackup(s, ID, undefined, scratch)).rejects.toThrow(/metal\.dump of backup .* is a symbolic link/);
    expect(await readdir(scratch)).toEqual([]);
  });
});

describe("a part in a backup directory", () => {
  it("is copied into the private scratch directory, so what was checked is what is restored", async () => {
    const store = await fresh("copy-dir");
    await mkdir(join(store, ID));
    await writeFile(join(store, ID, "metal.dump"), "hello");
    const scratch = await fresh("copy-scratch");
    const path = await new DirStore(store).fetchPart(ID, "metal.dump", scratch, 5);
    expect(path).toBe(join(scratch, "metal.dump"));
    await writeFile(join(store, ID, "metal.dump"), "HACKED");
    expect(await readFile(path!, "utf8")).toBe("hello");
    expect((await stat(path!)).mode & 0o777).toBe(0o600);
  });

  it("is copied only up to one byte past its manifest's size", async () => {
    const store = await fresh("bound-dir");
    await mkdir(join(store, ID));
    await writeFile(join(store, ID, "metal.dump"), "x".repeat(100_000));
    const scratch = await fresh("bound-scratch");
    const path = await new DirStore(store).fetchPart(ID, "metal.dump", scratch, 10);
    expect((await stat(path!)).size).toBe(11);
  });
});

describe("the backup key file", () => {
  it("refuses 32 typed characters as a raw key: a password, guessable offline against the key check", () => {
    expect(() => parseKey(Buffer.from("correct horse battery staple 123"))).toThrow(BackupKeyError);
    const random = Buffer.alloc(32, 0xff);
    expect(parseKey(random)).toEqual(random);
  });
});

describe("a manifest's free text", () => {
  it("is refused with terminal escapes or line breaks (list prints it)", () => {
    for (const bad of [{ producer: "0.1.0\u001b]0;owned\u0007" }, { producer: "0.1.0\nforged line" }, { createdAt: "2026-12-05T19:16:32Z\u001b[2J" }]) {
      expect(() => parseManifest(JSON.stringify({ ...plainManifest(ID), ...bad }), ID)).toThrow(/valid/);
    }
    const m = plainManifest(ID);
    m.parts[0]!.serverVersion = "16\u001b[31m";
    expect(() => parseManifest(JSON.stringify(m), ID)).toThrow(/server version/);
    expect(parseManifest(JSON.stringify(plainManifest(ID)), ID).producer).toBe("0.1.0");
  });
});

describe("an unencrypted backup while a key is set", () => {
  it("is refused: anyone who can write to the store could have planted it", async () => {
    const store = await fresh("downgrade");
    await mkdir(join(store, ID));
    await writeFile(join(store, ID, "manifest.json"), JSON.stringify(plainManifest(ID)));
    for (const f of ["metal.dump", "masterdata.dump"]) await writeFile(join(store, ID, f), "hello");
    const keys = deriveKeys(Buffer.alloc(32, 7));
    const scratch = await fresh("downgrade-scratch");
    await expect(verifyBackup(new DirStore(store), ID, keys, scratch)).rejects.toThrow(RestoreRefused);
    await expect(verifyBackup(new DirStore(store), ID, keys, scratch)).rejects.toThrow(/is not encrypted, but METAL_BACKUP_KEY_FILE is set/);
  });
});

/** A fake S3 service that answers what the test says and records the requests. */
async function fakeS3(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${decodeURIComponent(new URL(req.url!, "http://x").pathname)}`);
    req.resume();
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const store = new S3Store({ endpoint: `http://127.0.0.1:${port}`, bucket: "bucket", region: "us-east-1", credentials: { accessKeyId: "AK", secretAccessKey: "SK" }, prefix: "metal/" });
  return { seen, store, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe("a hostile S3 service", () => {
  it("cannot steer retention's deletes outside the backup's prefix", async () => {
    const listing = [`metal/${ID}/manifest.json`, `metal/${ID}/metal.dump`, "other/precious", `metal/${OTHER}/metal.dump`, `metal/${ID}/../../other/x`]
      .map((k) => `<Contents><Key>${k}</Key></Contents>`)
      .join("");
    const s3 = await fakeS3((req, res) => {
      if (req.method === "GET") res.end(`<ListBucketResult><IsTruncated>false</IsTruncated>${listing}</ListBucketResult>`);
      else res.writeHead(204).end();
    });
    try {
      await s3.store.remove(ID);
      expect(s3.seen.filter((r) => r.startsWith("DELETE"))).toEqual([`DELETE /bucket/metal/${ID}/manifest.json`, `DELETE /bucket/metal/${ID}/metal.dump`]);
    } finally {
      await s3.close();
    }
  });

  it("cannot fill memory with a listing: a page of more than S3's 1000 keys is refused", async () => {
    const page = Array.from({ length: 1001 }, (_, i) => `<Contents><Key>metal/${ID}/k${i}</Key></Contents>`).join("");
    const s3 = await fakeS3((_req, res) => {
      res.end(`<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>again</NextContinuationToken>${page}</ListBucketResult>`);
    });
    try {
      await expect(s3.store.list()).rejects.toThrow(/more than 1000 entries/);
      expect(s3.seen.length).toBe(1);
    } finally {
      await s3.close();
    }
  });

  it("cannot put line breaks or terminal escapes into messages and logs", async () => {
    const s3 = await fakeS3((_req, res) => {
      res.writeHead(403).end(`<Error><Code>Denied\u001b[2J</Code><Message>no\nlevel=info msg=&quot;forged&quot;\u001b]0;x\u0007${"y".repeat(5000)}</Message></Error>`);
    });
    try {
      const err = (await s3.store.readManifest(ID).catch((e: unknown) => e)) as Error;
      expect(err.message).toMatch(/^S3 GET metal\/.*: 403 Denied/);
      expect(err.message).not.toMatch(/[\n\u001b\u0007]/);
      expect(err.message.length).toBeLessThan(800);
    } finally {
      await s3.close();
    }
  });

  it("cannot fill the scratch disk: a part longer than its manifest says is cut off and removed", async () => {
    const s3 = await fakeS3((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 1);
      let sent = 0;
      const more = () => {
        while (sent < 64 && res.write(chunk)) sent++;
        if (sent >= 64) res.end();
        else res.once("drain", more);
      };
      more();
    });
    try {
      const scratch = await fresh("s3-bound");
      await expect(s3.store.fetchPart(ID, "metal.dump", scratch, 1000)).rejects.toThrow(/larger than its manifest says/);
      expect(await readdir(scratch)).toEqual([]);
    } finally {
      await s3.close();
    }
  });
});

describe("settings", () => {
  const env = { METAL_BACKUP_S3_BUCKET: "b", METAL_BACKUP_S3_ACCESS_KEY: "a", METAL_BACKUP_S3_SECRET_KEY: "s" };
  it("refuse plain http to another host unless asked for; loopback and https are fine", () => {
    expect(() => loadBackupSettings({ ...env, METAL_BACKUP_S3_ENDPOINT: "http://s3.example.org" }, [])).toThrow(SettingsError);
    expect(() => loadBackupSettings({ ...env, METAL_BACKUP_S3_ENDPOINT: "http://s3.example.org" }, [])).toThrow(/plain http/);
    expect(loadBackupSettings({ ...env, METAL_BACKUP_S3_ENDPOINT: "http://s3.example.org", METAL_BACKUP_S3_ALLOW_HTTP: "true" }, []).s3?.endpoint).toBe("http://s3.example.org");
    for (const ok of ["http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000", "https://s3.example.org"]) {
      expect(loadBackupSettings({ ...env, METAL_BACKUP_S3_ENDPOINT: ok }, []).s3?.endpoint).toBe(ok);
    }
  });

  it("keep a database password off pg_dump's command line, in the userinfo or the query", () => {
    for (const url of ["postgres://metal:s3cret@db:5432/metal", "postgres://metal@db:5432/metal?password=s3cret&sslmode=require"]) {
      const c = connectionOf(url);
      expect(c.dbname).not.toContain("s3cret");
      expect(c.env.PGPASSWORD).toBe("s3cret");
    }
  });
});

/** A directory backup of "hello" parts; `onFetch` runs when restore fetches a part (what happens meanwhile). */
async function plantedBackup(name: string, engine: "postgres" | "pglite", onFetch: () => Promise<void>): Promise<Store> {
  const dir = await fresh(name);
  await mkdir(join(dir, ID));
  await writeFile(join(dir, ID, "manifest.json"), JSON.stringify(plainManifest(ID, engine)));
  for (const db of ["metal", "masterdata"] as const) await writeFile(join(dir, ID, partFile(db, engine, false)), "hello");
  const inner = new DirStore(dir);
  return Object.assign(Object.create(inner) as DirStore, {
    fetchPart: async (id: string, file: string, scratch: string, max: number) => {
      await onFetch();
      return inner.fetchPart(id, file, scratch, max);
    },
  });
}

const settingsFor = (metal: DatabaseLocation, masterdata: DatabaseLocation): BackupSettings => ({
  databases: { metal, masterdata },
  dir: undefined,
  s3: undefined,
  keyFile: undefined,
  intervalMs: 3_600_000,
  retention: { keep: 1, maxAgeMs: undefined, partialGraceMs: 3_600_000 },
  scratchDir: root,
  logLevel: "silent",
});

describe("restore racing a starting metal-api", () => {
  const log = createLogger("silent");

  it("does not replace an embedded database that got data while the backup was verified", async () => {
    const dbs = await fresh("race-pglite");
    const metal = join(dbs, "metal-db");
    const store = await plantedBackup("race-pglite-store", "pglite", async () => {
      await mkdir(metal, { recursive: true });
      await writeFile(join(metal, "PG_VERSION"), "17");
    });
    const settings = settingsFor({ engine: "pglite", dir: metal }, { engine: "pglite", dir: join(dbs, "masterdata-db") });
    await expect(restoreBackup({ settings, stores: [store], keys: undefined, log })).rejects.toThrow(/got data while the backup was verified/);
    expect(await readdir(metal)).toEqual(["PG_VERSION"]);
    expect((await readdir(dbs)).sort()).toEqual(["metal-db"]);
  });

  it("holds metal-api's migration locks of PostgreSQL databases while it verifies", async () => {
    const [metal, masterdata] = await Promise.all([createScratchDatabase("backup_race"), createScratchDatabase("backup_race")]);
    try {
      const free: boolean[] = [];
      const store = await plantedBackup("race-pg-store", "postgres", async () => {
        const c = new pg.Client({ connectionString: metal.url });
        await c.connect();
        try {
          free.push((await c.query<{ got: boolean }>("select pg_try_advisory_lock(7201) as got")).rows[0]!.got);
        } finally {
          await c.end();
        }
        throw new StoreError("stop here");
      });
      const settings = settingsFor({ engine: "postgres", url: metal.url }, { engine: "postgres", url: masterdata.url });
      await expect(restoreBackup({ settings, stores: [store], keys: undefined, log })).rejects.toThrow(/stop here/);
      expect(free).toEqual([false]);
    } finally {
      await Promise.all([metal.drop(), masterdata.drop()]);
    }
  });
});

describe("retention in a store someone else can write to", () => {
  it("does not count planted manifests, so they cannot push the real backups out", async () => {
    const dir = await fresh("retention-planted");
    const keys = deriveKeys(Buffer.alloc(32, 9));
    const other = deriveKeys(Buffer.alloc(32, 1));
    const write = async (id: string, k: typeof keys) => {
      const m = plainManifest(id);
      m.encryption = { algorithm: "AES-256-GCM", kdf: "HKDF-SHA256", keyCheck: keyCheck(k) };
      for (const p of m.parts) p.file = partFile(p.database, "postgres", true);
      m.mac = manifestMac(k, macInput(m));
      await mkdir(join(dir, id));
      await writeFile(join(dir, id, "manifest.json"), JSON.stringify(m));
    };
    const real = ["20261205T100000Z-0001", "20261205T110000Z-0002", "20261205T120000Z-0003"];
    const planted = ["20261205T130000Z-0004", "20261205T130001Z-0005", "20261205T130002Z-0006"];
    for (const id of real) await write(id, keys);
    for (const id of planted) await write(id, other);
    await mkdir(join(dir, "20261205T130003Z-0007"));
    await writeFile(join(dir, "20261205T130003Z-0007", "manifest.json"), "{ not json");
    const settings = { ...settingsFor({ engine: "pglite", dir: "unused" }, { engine: "pglite", dir: "unused" }), retention: { keep: 2, maxAgeMs: undefined, partialGraceMs: 3_600_000 } };
    const removed = await prune({ settings, stores: [new DirStore(dir)], keys, log: createLogger("silent"), now: () => new Date("2026-12-06T00:00:00Z") });
    expect(Object.values(removed)).toEqual([[real[0]]]);
    expect((await readdir(dir)).sort()).toEqual([...real.slice(1), ...planted, "20261205T130003Z-0007"].sort());
  });
});
