import { setMaxListeners } from "node:events";
import type { Interceptor } from "@connectrpc/connect";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { createConnectHandler } from "../../server/http/connect-handler.js";
import { LeanGrpcStreams } from "../../server/http/lean-grpc-streams.js";
import { listen } from "../../server/http/listener.js";
import type { AppHandler } from "../../server/http/node-handler.js";

/**
 * The server side of lean-wait-memory.test.ts, in a process of its own
 * (started with --expose-gc) so that its heap holds the server's half of the
 * streams only. Two listeners wired as server/app.ts wires the API: one with
 * the lean path for Wait (METAL_LEAN_WAIT=true), one without it
 * (METAL_LEAN_WAIT=false: Connect's own handler). Wait answers once and then
 * holds the stream open until the client goes away, as a waiting machine's.
 *
 * IPC: sends { lean, connect } (their URLs) when listening; answers
 * "measure" with { heapUsed, open } after full collections.
 */
export interface ChildUrls {
  lean: string;
  connect: string;
}
export interface HeapReport {
  heapUsed: number;
  /** Wait calls running right now. */
  open: number;
}

let open = 0;
const shutdown = new AbortController();
// Connect's handler listens on the shutdown signal once per open call, as in server/app.ts.
setMaxListeners(0, shutdown.signal);
/** One interceptor that passes the call on, so both paths run an interceptor chain as the app's do. */
const passThrough: Interceptor = (next) => (req) => next(req);

async function serve(leanWait: boolean): Promise<string> {
  const lean = new LeanGrpcStreams(leanWait ? [BootService.method.wait] : []);
  const options = { interceptors: [passThrough], shutdownSignal: shutdown.signal, readMaxBytes: 64 * 1024, earlyCheck: async () => undefined, requestTimeoutMs: 60_000 };
  const connect = createConnectHandler({
    ...options,
    routes(router) {
      lean.capture(router).service(BootService, {
        async *wait(_req, ctx) {
          open++;
          try {
            yield {};
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          } finally {
            open--;
          }
        },
      });
    },
    onError: () => undefined,
    fallback: (_req, res) => {
      res.writeHead(404);
      res.end();
    },
  });
  const handler: AppHandler = lean.handler(connect, options);
  handler.takeStream = lean.streamTaker(options);
  return (await listen(handler, "127.0.0.1:0")).url;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("lean-wait-memory-child.ts needs --expose-gc");

const urls: ChildUrls = { lean: await serve(true), connect: await serve(false) };
process.on("message", async (msg) => {
  if (msg !== "measure") return;
  // Several rounds, with turns of the event loop between them: closed streams finish tearing down.
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  process.send!({ heapUsed: process.memoryUsage().heapUsed, open } satisfies HeapReport);
});
process.on("disconnect", () => process.exit(0));
process.send!(urls);
