import http2 from "node:http2";
import { syncBuiltinESMExports } from "node:module";

let installed = false;

/**
 * connect-node's Http2SessionManager destroys a connection that receives a
 * GOAWAY (NO_ERROR) while no stream is open with an error that Node raises
 * later, as the session's "error" event. When the manager has left that
 * connection's state by then (a new call came and reconnected), nobody
 * listens any more and the process dies of an uncaught ConnectError
 * "received GOAWAY without any open streams" (connect-es issue 1768, open
 * when this was written). A server's graceful shutdown or idle timeout sends
 * exactly that GOAWAY; the suite saw it kill a lab whose control plane
 * restarted. Every client session therefore gets a listener of last resort:
 * the error ends the session as intended, not the process. The manager's own
 * listeners and the calls on the session still get every error.
 */
export function guardHttp2ClientSessions(): void {
  if (installed) return;
  installed = true;
  const connect = http2.connect;
  const guarded = (...args: Parameters<typeof connect>) => {
    const session = connect(...args);
    session.on("error", () => {});
    return session;
  };
  http2.connect = guarded as typeof connect;
  // connect-node imports node:http2 as an ES module: its named export must see the wrapper too.
  syncBuiltinESMExports();
}
