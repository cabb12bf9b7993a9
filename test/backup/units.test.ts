import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptingStream, deriveKeys, encryptingTransform, keyCheck, manifestMac, OVERHEAD, parseKey } from "../../server/backup/crypto.js";
import { backupId, isBackupId, type Manifest, macInput, migrationMismatch, parseManifest, partFile, timeOfId } from "../../server/backup/manifest.js";
import { toPrune } from "../../server/backup/retention.js";
import { xmlText } from "../../server/backup/s3.js";
import { EMPTY_SHA256, sha256Hex, sign } from "../../server/backup/sigv4.js";

/** The pure parts of metal-backup: ids, manifests, retention, SigV4, the encrypted part format. */

const manifest = (): Manifest => ({
  format: "metal-backup",
  version: 1,
  id: "20261205T191632Z-3fa9",
  createdAt: "2026-12-05T19:16:32.000Z",
  producer: "0.1.0",
  encryption: null,
  parts: (["metal", "masterdata"] as const).map((database) => ({
    database,
    engine: "postgres" as const,
    format: "pg_dump-custom",
    file: partFile(database, "postgres", false),
    size: 10,
    sha256: "a".repeat(64),
    migrations: { count: 3, last: 100 },
    tables: 4,
    serverVersion: "15.20",
  })),
});

describe("backup ids", () => {
  it("sort by time and carry it", () => {
    const id = backupId(new Date("2026-12-05T19:16:32.123Z"), "3fa9");
    expect(id).toBe("20261205T191632Z-3fa9");
    expect(isBackupId(id)).toBe(true);
    expect(timeOfId(id)?.toISOString()).toBe("2026-12-05T19:16:32.000Z");
    expect(backupId(new Date("2026-12-05T19:16:33Z"), "0000") > id).toBe(true);
  });
  it("are refused when they could name another path", () => {
    for (const bad of ["../x", "20261205T191632Z-3fa9/..", "20261205T191632Z", "", "20261205T191632Z-3FA9"]) expect(isBackupId(bad)).toBe(false);
  });
});

describe("parseManifest", () => {
  it("reads back what was written", () => {
    const m = manifest();
    expect(parseManifest(JSON.stringify(m), m.id)).toEqual(m);
  });
  it.each([
    ["truncated JSON", (s: string) => s.slice(0, s.length / 2), /not JSON/],
    ["another id", (s: string) => s.replace("3fa9", "0000"), /names backup/],
    ["a file name outside the backup", (s: string) => s.replace('"metal.dump"', '"../../etc/passwd"'), /unexpected file name/],
    ["a part missing", (s: string) => JSON.stringify({ ...JSON.parse(s), parts: [JSON.parse(s).parts[0]] }), /exactly one part of the masterdata/],
    ["a newer format version", (s: string) => s.replace('"version":1', '"version":2'), /version 2 is not supported/],
    ["a bad checksum", (s: string) => s.replace("a".repeat(64), "xyz"), /valid sha256/],
    ["an encrypted one without MAC", (s: string) => s.replace('"encryption":null', '"encryption":{"algorithm":"AES-256-GCM","kdf":"HKDF-SHA256","keyCheck":"00000000000000000000000000000000"}'), /no MAC/],
  ])("refuses %s", (_what, damage, message) => {
    const m = manifest();
    expect(() => parseManifest(damage(JSON.stringify(m)), m.id)).toThrow(message);
  });
  it("refuses a backup of a newer schema, takes an older one", () => {
    const part = manifest().parts[0]!;
    expect(migrationMismatch(part, { count: 3, last: 100 })).toBeUndefined();
    expect(migrationMismatch(part, { count: 4, last: 200 })).toBeUndefined();
    expect(migrationMismatch(part, { count: 2, last: 50 })).toMatch(/newer release/);
  });
  it("covers everything but the MAC with the MAC", () => {
    const keys = deriveKeys(randomBytes(32));
    const m = manifest();
    const mac = manifestMac(keys, macInput(m));
    expect(manifestMac(keys, macInput({ ...m, mac }))).toBe(mac);
    expect(manifestMac(keys, macInput({ ...m, createdAt: "2027-01-01T00:00:00.000Z" }))).not.toBe(mac);
  });
});

describe("retention", () => {
  const at = (iso: string, complete = true) => ({ id: `${iso}`, time: new Date(iso), complete });
  const now = new Date("2026-12-05T12:00:00Z");
  const backups = [at("2026-12-05T11:00:00Z"), at("2026-12-05T10:00:00Z"), at("2026-12-04T10:00:00Z"), at("2026-11-01T10:00:00Z"), at("2026-12-05T11:30:00Z", false), at("2026-12-01T00:00:00Z", false)];
  it("keeps the newest N", () => {
    expect(toPrune(backups, { keep: 2, maxAgeMs: undefined, partialGraceMs: 86_400_000 }, now)).toEqual(["2026-11-01T10:00:00Z", "2026-12-01T00:00:00Z", "2026-12-04T10:00:00Z"]);
  });
  it("drops what is older than the maximum age", () => {
    expect(toPrune(backups, { keep: 0, maxAgeMs: 7 * 86_400_000, partialGraceMs: 86_400_000 }, now)).toEqual(["2026-11-01T10:00:00Z", "2026-12-01T00:00:00Z"]);
  });
  it("never drops the newest complete backup, nor a partial one being written", () => {
    const old = [at("2026-01-01T00:00:00Z"), at("2026-12-05T11:59:00Z", false)];
    expect(toPrune(old, { keep: 1, maxAgeMs: 1000, partialGraceMs: 86_400_000 }, now)).toEqual([]);
  });
});

describe("SigV4", () => {
  it("signs AWS's documented GET object example", () => {
    // docs.aws.amazon.com, "Signature Calculations for the Authorization Header", example: GET Object.
    const s = sign(
      {
        method: "GET",
        url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
        headers: { Range: "bytes=0-9" },
        payloadSha256: EMPTY_SHA256,
        region: "us-east-1",
        now: new Date("2013-05-24T00:00:00Z"),
      },
      { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
    );
    expect(s.stringToSign.split("\n")[3]).toBe("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    expect(s.signature).toBe("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    expect(s.headers.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
  });
  // The other examples of the same AWS page: a PUT with a body and a header of its own (and a "$" in the key), a sub-resource, a query to sort.
  const EXAMPLE = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };
  const at = new Date("2013-05-24T00:00:00Z");
  it.each([
    [
      "PUT object",
      "PUT",
      "https://examplebucket.s3.amazonaws.com/test$file.text",
      { Date: "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY" },
      sha256Hex("Welcome to Amazon S3."),
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    ],
    ["GET bucket lifecycle", "GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", {}, EMPTY_SHA256, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"],
    ["GET bucket (list objects)", "GET", "https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2", {}, EMPTY_SHA256, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"],
  ])("signs AWS's %s example", (_what, method, url, headers, payload, signature) => {
    expect(sign({ method, url: new URL(url), headers, payloadSha256: payload, region: "us-east-1", now: at }, EXAMPLE).signature).toBe(signature);
  });
  it("reads S3's XML text", () => {
    expect(xmlText("a&amp;b&lt;c&gt;&quot;&#x41;&#66;&unknown;")).toBe('a&b<c>"AB&unknown;');
  });
  it("encodes query parameters and sorts them", () => {
    const s = sign(
      { method: "GET", url: new URL("http://127.0.0.1:9000/b?prefix=metal/&list-type=2"), headers: {}, payloadSha256: EMPTY_SHA256, region: "us-east-1", now: new Date() },
      { accessKeyId: "a", secretAccessKey: "b" },
    );
    expect(s.canonicalRequest.split("\n")[2]).toBe("list-type=2&prefix=metal%2F");
  });
});

describe("backup key and encrypted parts", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "metal-backup-unit-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads hex, base64 and raw keys alike, refuses others", () => {
    const raw = randomBytes(32);
    expect(parseKey(Buffer.from(`${raw.toString("hex")}\n`))).toEqual(raw);
    expect(parseKey(Buffer.from(raw.toString("base64")))).toEqual(raw);
    expect(parseKey(raw)).toEqual(raw);
    expect(() => parseKey(Buffer.from("short"))).toThrow(/32 bytes/);
    expect(keyCheck(deriveKeys(raw))).not.toBe(keyCheck(deriveKeys(randomBytes(32))));
  });

  const encryptTo = async (keys: ReturnType<typeof deriveKeys>, plain: Buffer, path: string) =>
    pipeline(Readable.from([plain.subarray(0, 7), plain.subarray(7)]), encryptingTransform(keys, "id-1", "metal.dump.enc"), createWriteStream(path));

  it("round-trips, and refuses an altered part, a wrong key and another name", async () => {
    const keys = deriveKeys(randomBytes(32));
    const plain = randomBytes(100_000);
    const path = join(dir, "part");
    await encryptTo(keys, plain, path);
    const stored = await readFile(path);
    expect(stored.length).toBe(plain.length + OVERHEAD);
    expect(await buffer(await decryptingStream(keys, "id-1", "metal.dump.enc", path))).toEqual(plain);

    await expect(buffer(await decryptingStream(deriveKeys(randomBytes(32)), "id-1", "metal.dump.enc", path))).rejects.toThrow(/does not decrypt/);
    await expect(buffer(await decryptingStream(keys, "id-2", "metal.dump.enc", path))).rejects.toThrow(/does not decrypt/);
    const flipped = Buffer.from(stored);
    flipped[5000] = flipped[5000]! ^ 1;
    await writeFile(path, flipped);
    await expect(buffer(await decryptingStream(keys, "id-1", "metal.dump.enc", path))).rejects.toThrow(/altered/);
    await writeFile(path, stored.subarray(0, 10));
    await expect(decryptingStream(keys, "id-1", "metal.dump.enc", path)).rejects.toThrow(/truncated/);
  });

  it("handles an empty part", async () => {
    const keys = deriveKeys(randomBytes(32));
    const path = join(dir, "empty");
    await encryptTo(keys, Buffer.alloc(0), path);
    expect((await buffer(await decryptingStream(keys, "id-1", "metal.dump.enc", path))).length).toBe(0);
  });
});
