import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isBackupId, MANIFEST_NAME, MAX_MANIFEST_BYTES } from "./manifest.js";
import { S3Client, type S3Options } from "./s3.js";

/**
 * Where backups are kept. A backup is the files of one id; the manifest is
 * written last, so a listed id without one is an unfinished backup.
 */
export interface Store {
  /** "dir /backups" or "s3 bucket/prefix": for messages and logs (nothing secret). */
  readonly name: string;
  readonly kind: "dir" | "s3";
  /** The ids found, with whether their manifest exists. */
  list(): Promise<{ id: string; complete: boolean }[]>;
  /** The manifest's text, or undefined when the backup has none. */
  readManifest(id: string): Promise<string | undefined>;
  /**
   * The part as a local file: the store's own file (a directory) or a copy
   * downloaded into `scratch`. Undefined when it is missing.
   */
  fetchPart(id: string, file: string, scratch: string): Promise<string | undefined>;
  /** Stores a finished backup from the local directory `from` (its parts, then its manifest). */
  publish(id: string, from: string, parts: { file: string; size: number; sha256: string }[], manifest: string): Promise<void>;
  remove(id: string): Promise<void>;
}

export const sha256OfFile = (path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(path)
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });

const missing = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";

/** Backups in a directory: <dir>/<id>/{manifest.json, parts}; written as <dir>/.<id>.partial and renamed when complete. */
export class DirStore implements Store {
  readonly kind = "dir";
  readonly name: string;
  constructor(readonly dir: string) {
    this.name = `dir ${dir}`;
  }

  /** Where a backup being made is staged: renaming it into place is then the whole publish. */
  stagingDir(id: string): string {
    return join(this.dir, `.${id}.partial`);
  }

  async list() {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      if (missing(err)) return [];
      throw err;
    }
    const out: { id: string; complete: boolean }[] = [];
    for (const e of entries) {
      const id = e.startsWith(".") && e.endsWith(".partial") ? e.slice(1, -".partial".length) : e;
      if (!isBackupId(id)) continue;
      const complete =
        id === e &&
        (await stat(join(this.dir, e, MANIFEST_NAME)).then(
          () => true,
          () => false,
        ));
      out.push({ id, complete });
    }
    return out;
  }

  async readManifest(id: string) {
    const path = join(this.dir, id, MANIFEST_NAME);
    try {
      if ((await stat(path)).size > MAX_MANIFEST_BYTES) throw new Error(`the manifest of ${id} is larger than ${MAX_MANIFEST_BYTES} bytes: not one of ours`);
      return await readFile(path, "utf8");
    } catch (err) {
      if (missing(err)) return undefined;
      throw err;
    }
  }

  async fetchPart(id: string, file: string) {
    const path = join(this.dir, id, file);
    return stat(path).then(
      () => path,
      (err) => {
        if (missing(err)) return undefined;
        throw err;
      },
    );
  }

  async publish(id: string, from: string, parts: { file: string }[], manifest: string) {
    const staging = this.stagingDir(id);
    if (from !== staging) {
      await rm(staging, { recursive: true, force: true });
      await mkdir(staging, { recursive: true, mode: 0o700 });
      for (const p of parts) await copyFile(join(from, p.file), join(staging, p.file));
    }
    await writeFile(join(staging, MANIFEST_NAME), manifest, { mode: 0o600 });
    await rename(staging, join(this.dir, id));
  }

  async remove(id: string) {
    // The manifest first: a backup cut off while being removed reads as unfinished, never as complete but missing parts.
    await rm(join(this.dir, id, MANIFEST_NAME), { force: true });
    await rm(join(this.dir, id), { recursive: true, force: true });
    await rm(this.stagingDir(id), { recursive: true, force: true });
  }
}

/** Backups in a bucket: <prefix><id>/{manifest.json, parts}. */
export class S3Store implements Store {
  readonly kind = "s3";
  readonly name: string;
  private readonly client: S3Client;
  /** "" or ends with "/". */
  private readonly prefix: string;

  constructor(opts: S3Options & { prefix: string }) {
    this.client = new S3Client(opts);
    this.prefix = opts.prefix === "" || opts.prefix.endsWith("/") ? opts.prefix : `${opts.prefix}/`;
    this.name = `s3 ${opts.bucket}/${this.prefix}`;
  }

  private key(id: string, file: string): string {
    return `${this.prefix}${id}/${file}`;
  }

  async list() {
    const { keys } = await this.client.list(this.prefix);
    const ids = new Map<string, boolean>();
    for (const k of keys) {
      const rest = k.slice(this.prefix.length);
      const slash = rest.indexOf("/");
      if (slash < 0) continue;
      const id = rest.slice(0, slash);
      if (!isBackupId(id)) continue;
      ids.set(id, (ids.get(id) ?? false) || rest.slice(slash + 1) === MANIFEST_NAME);
    }
    return [...ids].map(([id, complete]) => ({ id, complete }));
  }

  readManifest(id: string) {
    return this.client.getText(this.key(id, MANIFEST_NAME), MAX_MANIFEST_BYTES);
  }

  async fetchPart(id: string, file: string, scratch: string) {
    const path = join(scratch, file);
    try {
      await this.client.getFile(this.key(id, file), path);
      return path;
    } catch (err) {
      await rm(path, { force: true });
      if ((err as { code?: string }).code === "NoSuchKey" || (err as { status?: number }).status === 404) return undefined;
      throw err;
    }
  }

  async publish(id: string, from: string, parts: { file: string; size: number; sha256: string }[], manifest: string) {
    for (const p of parts) await this.client.putFile(this.key(id, p.file), join(from, p.file), p.size, p.sha256);
    await this.client.putText(this.key(id, MANIFEST_NAME), manifest);
  }

  async remove(id: string) {
    // The manifest first: a backup cut off while being removed reads as unfinished, never as complete but missing parts.
    const { keys } = await this.client.list(`${this.prefix}${id}/`);
    const manifest = this.key(id, MANIFEST_NAME);
    for (const k of [...keys.filter((k) => k === manifest), ...keys.filter((k) => k !== manifest)]) await this.client.delete(k);
  }
}
