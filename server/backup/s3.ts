import { createReadStream, createWriteStream } from "node:fs";
import http from "node:http";
import https from "node:https";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Credentials, EMPTY_SHA256, sha256Hex, sign, uriEncode } from "./sigv4.js";

/**
 * A small client of S3-compatible object storage: the five calls backups
 * need (put, get, head-less list, delete), path-style addressing
 * (endpoint/bucket/key), SigV4 signed. Errors carry S3's error code and the
 * key, never credentials or signatures.
 */

export interface S3Options {
  /** http(s)://host[:port] of the service. */
  endpoint: string;
  bucket: string;
  region: string;
  credentials: Credentials;
  /** Per request, until the response starts and between its chunks (default 60 s). */
  timeoutMs?: number;
  now?: () => Date;
}

export class S3Error extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

interface Request {
  method: "GET" | "PUT" | "DELETE";
  key: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: () => Readable;
  payloadSha256?: string;
}

/** Listing pages are bounded by S3 (1000 keys); this bounds how many pages one list reads. */
const MAX_LIST_PAGES = 1000;
const MAX_PAGE_KEYS = 1000;
/** Error bodies and listings are read into memory; bound them. */
const MAX_TEXT_BYTES = 8 * 1024 * 1024;

export class S3Client {
  private readonly endpoint: URL;

  constructor(private readonly opts: S3Options) {
    this.endpoint = new URL(opts.endpoint);
    if (this.endpoint.protocol !== "http:" && this.endpoint.protocol !== "https:") throw new Error("the S3 endpoint must be an http:// or https:// URL");
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(opts.bucket)) throw new Error(`"${opts.bucket}" is not an S3 bucket name`);
  }

  private url(key: string, query: Record<string, string> = {}): URL {
    const base = this.endpoint.pathname.replace(/\/+$/, "");
    const u = new URL(this.endpoint.origin);
    u.pathname = `${base}/${this.opts.bucket}${key ? `/${uriEncode(key, true)}` : ""}`;
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    return u;
  }

  /** Sends a request; resolves with the response once its status is a success (2xx), else rejects with S3Error. */
  private send(req: Request): Promise<http.IncomingMessage> {
    const url = this.url(req.key, req.query);
    const signed = sign(
      { method: req.method, url, headers: req.headers ?? {}, payloadSha256: req.payloadSha256 ?? EMPTY_SHA256, region: this.opts.region, now: (this.opts.now ?? (() => new Date()))() },
      this.opts.credentials,
    );
    const lib = url.protocol === "https:" ? https : http;
    const what = `${req.method} ${req.key || "(bucket)"}`;
    return new Promise((resolve, reject) => {
      const r = lib.request(url, { method: req.method, headers: signed.headers, timeout: this.opts.timeoutMs ?? 60_000 }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(res);
        readText(res, 64 * 1024).then(
          (body) => {
            const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? "";
            const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? "";
            reject(new S3Error(`S3 ${what}: ${status}${code ? ` ${printableText(code)}` : ""}${message ? ` (${printableText(xmlText(message))})` : ""}`, status, code));
          },
          () => reject(new S3Error(`S3 ${what}: ${status}`, status, "")),
        );
      });
      r.on("timeout", () => r.destroy(new S3Error(`S3 ${what}: no answer within ${this.opts.timeoutMs ?? 60_000} ms`, 0, "Timeout")));
      r.on("error", (err) => reject(err instanceof S3Error ? err : new S3Error(`S3 ${what}: ${err.message}`, 0, "Network")));
      if (req.body) {
        const body = req.body();
        body.on("error", (err) => r.destroy(err));
        body.pipe(r);
      } else r.end();
    });
  }

  /** Uploads a file; S3 checks the body against its SHA-256. */
  async putFile(key: string, path: string, size: number, sha256: string): Promise<void> {
    const res = await this.send({ method: "PUT", key, headers: { "content-length": String(size), "content-type": "application/octet-stream" }, body: () => createReadStream(path), payloadSha256: sha256 });
    res.resume();
  }

  async putText(key: string, text: string): Promise<void> {
    const body = Buffer.from(text, "utf8");
    const res = await this.send({
      method: "PUT",
      key,
      headers: { "content-length": String(body.length), "content-type": "application/json" },
      body: () => Readable.from([body]),
      payloadSha256: sha256Hex(body),
    });
    res.resume();
  }

  /**
   * Downloads an object into a new file (0600); a missing object rejects
   * (S3Error, code NoSuchKey). An object longer than `maxBytes` is
   * refused (S3Error, code TooLarge) when that many bytes have come.
   */
  async getFile(key: string, path: string, maxBytes: number): Promise<void> {
    const res = await this.send({ method: "GET", key });
    let n = 0;
    const bounded = new Transform({
      transform(chunk: Buffer, _enc, done) {
        n += chunk.length;
        if (n > maxBytes) done(new S3Error(`S3 GET ${key}: larger than the ${maxBytes} bytes expected`, 0, "TooLarge"));
        else done(null, chunk);
      },
    });
    await pipeline(res, bounded, createWriteStream(path, { mode: 0o600, flags: "wx" }));
  }

  /** An object's text, or undefined when there is none; at most `maxBytes` (longer is an error). */
  async getText(key: string, maxBytes: number): Promise<string | undefined> {
    try {
      return await readText(await this.send({ method: "GET", key }), maxBytes);
    } catch (err) {
      if (err instanceof S3Error && (err.code === "NoSuchKey" || err.status === 404)) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    (await this.send({ method: "DELETE", key })).resume();
  }

  /** Keys and common prefixes under `prefix` (ListObjectsV2, every page). */
  async list(prefix: string, delimiter?: string): Promise<{ keys: string[]; prefixes: string[] }> {
    const keys: string[] = [];
    const prefixes: string[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const query: Record<string, string> = { "list-type": "2", prefix, ...(delimiter ? { delimiter } : {}), ...(token ? { "continuation-token": token } : {}) };
      const xml = await readText(await this.send({ method: "GET", key: "", query }), MAX_TEXT_BYTES);
      const before = keys.length + prefixes.length;
      for (const m of xml.matchAll(/<Contents>[\s\S]*?<Key>([^<]*)<\/Key>[\s\S]*?<\/Contents>/g)) keys.push(xmlText(m[1]!));
      for (const m of xml.matchAll(/<CommonPrefixes>\s*<Prefix>([^<]*)<\/Prefix>\s*<\/CommonPrefixes>/g)) prefixes.push(xmlText(m[1]!));
      // S3 answers at most 1000 entries a page: more is not S3, and would let a hostile service fill memory page after page.
      if (keys.length + prefixes.length - before > MAX_PAGE_KEYS) throw new S3Error(`S3 list ${prefix}: a page with more than ${MAX_PAGE_KEYS} entries`, 0, "TooMany");
      const truncated = /<IsTruncated>true<\/IsTruncated>/.test(xml);
      token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
      if (!truncated || !token) return { keys, prefixes };
      token = xmlText(token);
    }
    throw new S3Error(`S3 list ${prefix}: more than ${MAX_LIST_PAGES} pages`, 0, "TooMany");
  }
}

function readText(res: Readable, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    res.on("data", (c: Buffer) => {
      n += c.length;
      if (n > maxBytes) {
        res.destroy();
        reject(new Error(`response larger than ${maxBytes} bytes`));
      } else chunks.push(c);
    });
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
  });
}

/** What the service answered, as it may go into a message or log line: printable, no line breaks or terminal escapes, bounded. */
export const printableText = (s: string): string => {
  const clean = s.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > 300 ? `${clean.slice(0, 300)}…` : clean;
};

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

export const xmlText = (s: string): string =>
  s.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (all, e: string) =>
    e.startsWith("#x") ? String.fromCodePoint(Number.parseInt(e.slice(2), 16)) : e.startsWith("#") ? String.fromCodePoint(Number(e.slice(1))) : (ENTITIES[e] ?? all),
  );
