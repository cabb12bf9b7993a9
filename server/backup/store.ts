import { createHash } from "node:crypto";
import { constants, createReadStream, createWriteStream } from "node:fs";
import { copyFile, lstat, mkdir, open, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
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
   * The part as a private copy in `scratch` (copied from the directory or
   * downloaded): what is verified is what is restored, whatever happens to
   * the store meanwhile. A directory's file is copied up to `maxBytes` + 1
   * bytes (the caller compares sizes); a longer object is a StoreError. Undefined when it is missing.
   */
  fetchPart(id: string, file: string, scratch: string, maxBytes: number): Promise<string | undefined>;
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

/** Opened without following a symbolic link: a link planted in the backup directory is refused (ELOOP), not read. */
const NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;

export class StoreError extends Error {}

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
      // Only real directories are backups: a symbolic link (or file) under a backup's name is not ours to read or remove.
      if (!(await this.isDir(join(this.dir, e)))) continue;
      const complete =
        id === e &&
        (await lstat(join(this.dir, e, MANIFEST_NAME)).then(
          (s) => s.isFile(),
          () => false,
        ));
      out.push({ id, complete });
    }
    return out;
  }

  private isDir(path: string): Promise<boolean> {
    return lstat(path).then(
      (s) => s.isDirectory(),
      () => false,
    );
  }

  /** A file of a backup, opened without following links; undefined when it (or the backup) is missing. */
  private async openFile(id: string, file: string) {
    if (!(await this.isDir(join(this.dir, id)))) return undefined;
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(join(this.dir, id, file), NOFOLLOW);
    } catch (err) {
      if (missing(err)) return undefined;
      if ((err as NodeJS.ErrnoException).code === "ELOOP") throw new StoreError(`${file} of backup ${id} is a symbolic link: refused`);
      throw err;
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new StoreError(`${file} of backup ${id} is not a regular file: refused`);
    }
    return { fh, size: st.size };
  }

  async readManifest(id: string) {
    const f = await this.openFile(id, MANIFEST_NAME);
    if (!f) return undefined;
    try {
      if (f.size > MAX_MANIFEST_BYTES) throw new StoreError(`the manifest of ${id} is larger than ${MAX_MANIFEST_BYTES} bytes: not one of ours`);
      const buf = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
      const { bytesRead } = await f.fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_MANIFEST_BYTES) throw new StoreError(`the manifest of ${id} is larger than ${MAX_MANIFEST_BYTES} bytes: not one of ours`);
      return buf.subarray(0, bytesRead).toString("utf8");
    } finally {
      await f.fh.close();
    }
  }

  async fetchPart(id: string, file: string, scratch: string, maxBytes: number) {
    const f = await this.openFile(id, file);
    if (!f) return undefined;
    const path = join(scratch, file);
    try {
      // createReadStream closes the handle when done; `end` is inclusive: maxBytes + 1 bytes at most.
      await pipeline(f.fh.createReadStream({ start: 0, end: maxBytes }), createWriteStream(path, { mode: 0o600, flags: "wx" }));
      return path;
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
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
    // Only real directories: through a symbolic link under a backup's name, removing would delete files elsewhere.
    if (await this.isDir(join(this.dir, id))) {
      // The manifest first: a backup cut off while being removed reads as unfinished, never as complete but missing parts.
      await rm(join(this.dir, id, MANIFEST_NAME), { force: true });
      await rm(join(this.dir, id), { recursive: true, force: true });
    }
    if (await this.isDir(this.stagingDir(id))) await rm(this.stagingDir(id), { recursive: true, force: true });
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
      if (!k.startsWith(this.prefix)) continue;
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

  async fetchPart(id: string, file: string, scratch: string, maxBytes: number) {
    const path = join(scratch, file);
    try {
      await this.client.getFile(this.key(id, file), path, maxBytes);
      return path;
    } catch (err) {
      await rm(path, { force: true });
      if ((err as { code?: string }).code === "NoSuchKey" || (err as { status?: number }).status === 404) return undefined;
      if ((err as { code?: string }).code === "TooLarge") throw new StoreError(`${file} of backup ${id} is larger than its manifest says`);
      throw err;
    }
  }

  async publish(id: string, from: string, parts: { file: string; size: number; sha256: string }[], manifest: string) {
    for (const p of parts) await this.client.putFile(this.key(id, p.file), join(from, p.file), p.size, p.sha256);
    await this.client.putText(this.key(id, MANIFEST_NAME), manifest);
  }

  async remove(id: string) {
    // The manifest first: a backup cut off while being removed reads as unfinished, never as complete but missing parts.
    const under = `${this.prefix}${id}/`;
    // Only keys under this backup's prefix, whatever the listing says: a hostile or broken service must not steer deletes elsewhere.
    const keys = (await this.client.list(under)).keys.filter((k) => k.startsWith(under) && !k.slice(under.length).split("/").includes(".."));
    const manifest = this.key(id, MANIFEST_NAME);
    for (const k of [...keys.filter((k) => k === manifest), ...keys.filter((k) => k !== manifest)]) await this.client.delete(k);
  }
}
