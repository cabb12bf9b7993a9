import type { ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, endStreamFlag, endStreamToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { NodeHandler } from "./node-handler.js";

type NodeResponse = Parameters<NodeHandler>[1];

const GRPC = /^application\/grpc(-web(-text)?)?([+;]|$)/i;
const CONNECT_STREAM = /^application\/connect\+/i;

/**
 * Answers a call with an error without reading its body, in the call's own
 * protocol: gRPC and gRPC-Web get a trailers-only response (the status in
 * the headers), a Connect stream an end-stream message, a Connect unary call
 * (and anything else) the HTTP status of the code and a JSON error body.
 */
export function writeRefusal(res: NodeResponse, contentType: string | undefined, err: ConnectError, httpVersionMajor: number): void {
  // HTTP/1.1: the unread body is not drained; the connection ends with this answer instead.
  const close: Record<string, string> = httpVersionMajor === 1 ? { connection: "close" } : {};
  if (contentType && GRPC.test(contentType)) {
    const status = new Headers();
    setTrailerStatus(status, err);
    res.writeHead(200, { ...close, "content-type": contentType, ...Object.fromEntries(status.entries()) });
    res.end();
    return;
  }
  if (contentType && CONNECT_STREAM.test(contentType)) {
    const json = new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), err, undefined)));
    const envelope = Buffer.alloc(5 + json.length);
    envelope[0] = endStreamFlag;
    envelope.writeUInt32BE(json.length, 1);
    envelope.set(json, 5);
    res.writeHead(200, { ...close, "content-type": contentType });
    res.end(envelope);
    return;
  }
  const body = errorToJsonBytes(err, {});
  res.writeHead(codeToHttpStatus(err.code), { ...close, "content-type": "application/json", "content-length": String(body.length) });
  res.end(body);
}
