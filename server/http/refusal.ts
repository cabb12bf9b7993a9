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
export function writeRefusal(res: NodeResponse, contentType: string | undefined, err: ConnectError): void {
  // The body is never parsed: node:http drops what arrives of it after the answer (within the request timeout),
  // node:http2 resets the stream. Closing an HTTP/1.1 connection on unread data instead would reset the answer away.
  if (contentType && GRPC.test(contentType)) {
    const status = new Headers();
    setTrailerStatus(status, err);
    res.writeHead(200, { "content-type": contentType, ...Object.fromEntries(status.entries()) });
    res.end();
    return;
  }
  if (contentType && CONNECT_STREAM.test(contentType)) {
    const json = new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), err, undefined)));
    const envelope = Buffer.alloc(5 + json.length);
    envelope[0] = endStreamFlag;
    envelope.writeUInt32BE(json.length, 1);
    envelope.set(json, 5);
    res.writeHead(200, { "content-type": contentType });
    res.end(envelope);
    return;
  }
  const body = errorToJsonBytes(err, {});
  res.writeHead(codeToHttpStatus(err.code), { "content-type": "application/json", "content-length": String(body.length) });
  res.end(body);
}
