import { Code, type CallOptions as ConnectCallOptions, ConnectError, type ConnectRouter, createClient, type HandlerContext, type Transport } from "@connectrpc/connect";
import { FilesystemLayoutService } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";

export type MachineProxyLog = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/** Codes that say the control plane (or the way to it) failed, not the machine's request: worth a line in the log. */
const UPSTREAM_TROUBLE = new Set([Code.Unavailable, Code.Internal, Code.Unknown, Code.DataLoss]);

/**
 * The call options of a forwarded call: the machine's own Authorization
 * header, unchanged (the upstream transport carries no token, so the control
 * plane judges the machine's credential alone), the machine's cancellation
 * and its deadline. Without a bearer credential nothing is forwarded.
 */
function forwarded(ctx: HandlerContext): ConnectCallOptions {
  const authorization = ctx.requestHeader.get("authorization");
  if (!authorization || !/^bearer\s+\S/i.test(authorization)) throw new ConnectError("a machine's call needs its credential: Authorization: Bearer <machine credential>", Code.Unauthenticated);
  return { headers: { authorization }, signal: ctx.signal, timeoutMs: ctx.timeoutMs() };
}

/**
 * The upstream error as the machine gets it: same code, message and details.
 * A fresh error, since the upstream one carries the upstream response's
 * headers and trailers as metadata, which would be sent to the machine.
 */
function passOn(err: unknown, method: string, ctx: HandlerContext, log: MachineProxyLog): ConnectError {
  const upstream = ConnectError.from(err);
  const out = new ConnectError(upstream.rawMessage, upstream.code);
  out.details = upstream.details;
  if (UPSTREAM_TROUBLE.has(upstream.code) && !ctx.signal.aborted) log("warn", "forwarding a machine's call failed", { method, code: Code[upstream.code], error: upstream.rawMessage });
  return out;
}

type Forward<I, O> = (req: I, opts: ConnectCallOptions) => Promise<O>;

/** A unary method that forwards to the same method upstream. */
function unary<I, O>(method: string, call: Forward<I, O>, log: MachineProxyLog) {
  return async (req: I, ctx: HandlerContext): Promise<O> => {
    const opts = forwarded(ctx);
    try {
      return await call(req, opts);
    } catch (err) {
      throw passOn(err, method, ctx, log);
    }
  };
}

/**
 * Exactly metal-hammer's methods, each forwarded to the control plane.
 * BootService.Boot and Dhcp are pixie's (with an infra token), and every
 * other method is no business of a machine: they answer Unimplemented.
 */
export function machineRoutes(upstream: Transport, log: MachineProxyLog): (router: ConnectRouter) => void {
  const boot = createClient(BootService, upstream);
  const events = createClient(EventService, upstream);
  const images = createClient(ImageService, upstream);
  const layouts = createClient(FilesystemLayoutService, upstream);
  return (router) => {
    router.service(BootService, {
      register: unary("BootService.Register", (req, o) => boot.register(req, o), log),
      installationSucceeded: unary("BootService.InstallationSucceeded", (req, o) => boot.installationSucceeded(req, o), log),
      abortReinstall: unary("BootService.AbortReinstall", (req, o) => boot.abortReinstall(req, o), log),
      renewCredential: unary("BootService.RenewCredential", (req, o) => boot.renewCredential(req, o), log),
      /**
       * The machine going away aborts ctx.signal, which ends the upstream
       * stream; the upstream ending or failing ends the machine's, with its code.
       */
      async *wait(req, ctx) {
        const opts = forwarded(ctx);
        try {
          for await (const m of boot.wait(req, opts)) yield m;
        } catch (err) {
          throw passOn(err, "BootService.Wait", ctx, log);
        }
      },
    });
    router.service(EventService, { send: unary("EventService.Send", (req, o) => events.send(req, o), log) });
    router.service(ImageService, { get: unary("ImageService.Get", (req, o) => images.get(req, o), log) });
    router.service(FilesystemLayoutService, { get: unary("FilesystemLayoutService.Get", (req, o) => layouts.get(req, o), log) });
  };
}
