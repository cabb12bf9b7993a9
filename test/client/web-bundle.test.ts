import { build } from "esbuild";
import { describe, expect, it } from "vitest";

/**
 * The browser entry as a bundler sees it: bundled for the browser platform, a
 * Node built-in anywhere in its imports (node:http2 through transport.ts, say)
 * would fail to resolve and fail the build.
 */
describe("metal/client/web", () => {
  it("bundles for the browser without any Node built-in", async () => {
    const result = await build({
      entryPoints: ["client/web.ts"],
      bundle: true,
      platform: "browser",
      format: "esm",
      minify: true,
      write: false,
      logLevel: "silent",
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((i) => i.startsWith("node:") || /connect-node/.test(i))).toEqual([]);
    expect(inputs).toContain("client/web.ts");
    expect(inputs.some((i) => i.includes("@connectrpc/connect-web"))).toBe(true);
    expect(result.outputFiles[0]!.text).toContain("grpc-web");
  });
});
