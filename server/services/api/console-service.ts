import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ConsoleService, ConsoleServiceAttachResponseSchema } from "../../../gen/metal/api/v1/console_pb.js";
import { callerOf } from "../../auth/context.js";
import type { BrowserConsoles } from "../../usecases/console/browser-consoles.js";
import type { BrowserConsoleEvent } from "../../usecases/console/browser-session.js";

export interface ApiConsoleServiceDeps {
  consoles: BrowserConsoles;
}

type AttachResponse = MessageInitShape<typeof ConsoleServiceAttachResponseSchema>;

function toAttachResponse(e: BrowserConsoleEvent): AttachResponse {
  switch (e.kind) {
    case "opened":
      return { kind: { case: "opened", value: { sessionId: e.sessionId, machineId: e.machineId } } };
    case "data":
      return { kind: { case: "data", value: e.data } };
    case "ended":
      return { kind: { case: "ended", value: { reason: e.reason } } };
  }
}

/** The bearer secret of the call (the interceptor verified it), so the open console can re-verify it as the SSH console does. */
function bearerOf(header: string | null): string | undefined {
  return header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

/** A machine's serial console for browsers: access, bounds and sessions are the use case's (BrowserConsoles). */
export function createApiConsoleService({ consoles }: ApiConsoleServiceDeps): ServiceImpl<typeof ConsoleService> {
  return {
    async *attach(req, ctx) {
      const events = await consoles.attach(callerOf(ctx), bearerOf(ctx.requestHeader.get("authorization")), req, ctx.signal);
      for await (const e of events) yield toAttachResponse(e);
    },
    async input(req, ctx) {
      await consoles.input(callerOf(ctx), { sessionId: req.sessionId, project: req.project, data: req.data, resize: req.resize });
      return {};
    },
  };
}
