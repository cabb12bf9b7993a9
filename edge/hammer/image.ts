import { createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";

export class ImageError extends Error {}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The SHA-256 an image must have: the one the image contract carries, or,
 * for an image registered without one, the one next to the image (see
 * fetchChecksum). The contract's is trusted over the file's: the file comes
 * from the same server as the image, the contract from the control plane.
 */
export async function expectedChecksum(url: string, contractSha256: string, signal?: AbortSignal): Promise<string> {
  if (contractSha256 === "") return fetchChecksum(url, signal);
  const digest = contractSha256.toLowerCase();
  if (!SHA256_HEX.test(digest)) throw new ImageError(`image ${url}: the contract's sha256 is not a SHA-256 digest`);
  return digest;
}

/**
 * The SHA-256 of an image whose contract carries none: as the original does
 * with `<url>.md5`, the checksum file is fetched from next to the image:
 * `<url>.sha256`, in sha256sum's format (hex digest, optionally followed by a
 * file name).
 */
export async function fetchChecksum(url: string, signal?: AbortSignal): Promise<string> {
  const res = await fetch(`${url}.sha256`, { signal });
  if (!res.ok) throw new ImageError(`checksum ${url}.sha256: HTTP ${res.status}`);
  const text = (await res.text()).trim();
  const digest = text.split(/\s+/)[0]?.toLowerCase() ?? "";
  if (!SHA256_HEX.test(digest)) throw new ImageError(`checksum ${url}.sha256 is not a SHA-256 digest`);
  return digest;
}

/**
 * Downloads the image into `file`, hashing while it streams, and refuses it
 * (deleting what was written) unless it matches `expected`: a corrupt or
 * truncated image must never reach the disks.
 */
export async function downloadVerified(url: string, expected: string, file: string, signal?: AbortSignal): Promise<{ bytes: number }> {
  const res = await fetch(url, { signal });
  if (!res.ok || !res.body) throw new ImageError(`image ${url}: HTTP ${res.status}`);
  const hash = createHash("sha256");
  const out = createWriteStream(file);
  let bytes = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      bytes += chunk.length;
      if (!out.write(chunk)) await once(out, "drain");
    }
    out.end();
    await once(out, "finish");
  } catch (err) {
    out.destroy();
    await rm(file, { force: true });
    throw err;
  }
  const actual = hash.digest("hex");
  if (actual !== expected.toLowerCase()) {
    await rm(file, { force: true });
    throw new ImageError(`image ${url}: checksum mismatch (expected sha256 ${expected}, got ${actual})`);
  }
  return { bytes };
}
