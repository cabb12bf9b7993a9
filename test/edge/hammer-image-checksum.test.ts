import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedChecksum, ImageError } from "../../edge/hammer/image.js";

// Which checksum metal-hammer checks an image against: the contract's, else the one next to the image.
const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const FILE_DIGEST = sha("next to the image");
const CONTRACT_DIGEST = sha("in the contract");

let server: Server;
let base: string;
const asked: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    asked.push(req.url ?? "");
    if (req.url === "/os.img.sha256") return void res.writeHead(200).end(`${FILE_DIGEST}  os.img\n`);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

describe("expectedChecksum", () => {
  it("takes the contract's digest, lowercase, without asking the image server", async () => {
    asked.length = 0;
    expect(await expectedChecksum(`${base}/os.img`, CONTRACT_DIGEST.toUpperCase())).toBe(CONTRACT_DIGEST);
    expect(await expectedChecksum(`${base}/missing.img`, CONTRACT_DIGEST)).toBe(CONTRACT_DIGEST);
    expect(asked).toEqual([]);
  });

  it("reads <url>.sha256 only when the contract has none", async () => {
    asked.length = 0;
    expect(await expectedChecksum(`${base}/os.img`, "")).toBe(FILE_DIGEST);
    expect(asked).toEqual(["/os.img.sha256"]);
    await expect(expectedChecksum(`${base}/missing.img`, "")).rejects.toThrow(ImageError);
  });

  it("refuses a contract digest that is not one (the server validates it; the hammer does not trust that)", async () => {
    await expect(expectedChecksum(`${base}/os.img`, "abc")).rejects.toThrow(/contract's sha256 is not a SHA-256 digest/);
    await expect(expectedChecksum(`${base}/os.img`, `${CONTRACT_DIGEST}  os.img`)).rejects.toThrow(ImageError);
  });
});
