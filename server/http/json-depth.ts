import { Code, ConnectError } from "@connectrpc/connect";
import { EnvelopeReader, guardedBody } from "./guarded-body.js";

/**
 * How deep a JSON request may nest. No message of this API comes near it;
 * a body of nested arrays costs JSON.parse and the garbage collector seconds.
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

const tooDeep = () => new ConnectError(`the JSON request nests deeper than ${MAX_JSON_DEPTH} levels`, Code.InvalidArgument);

/**
 * Follows the nesting of JSON text chunk by chunk, before anything parses
 * it, and throws InvalidArgument when it goes deeper than MAX_JSON_DEPTH.
 * Only brackets outside strings count; whether the text is valid JSON is for
 * the parser to say afterwards.
 */
export class JsonDepthGuard {
  private depth = 0;
  private inString = false;
  private escaped = false;

  feed(bytes: Uint8Array, from = 0, to = bytes.length): void {
    for (let i = from; i < to; i++) {
      const b = bytes[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
      } else if (b === QUOTE) {
        this.inString = true;
      } else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
        if (++this.depth > MAX_JSON_DEPTH) throw tooDeep();
      } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) {
        this.depth--;
      }
    }
  }
}

/**
 * The same over a stream of enveloped messages (Connect streaming, gRPC-Web
 * and gRPC with JSON), whose JSON is followed message by message.
 */
export class EnvelopedJsonDepthGuard {
  private guard = new JsonDepthGuard();
  private readonly reader = new EnvelopeReader({
    start: () => void (this.guard = new JsonDepthGuard()),
    data: (bytes, from, to) => this.guard.feed(bytes, from, to),
    end: () => {},
  });

  feed(bytes: Uint8Array): void {
    this.reader.feed(bytes);
  }
}

/** A request body that is checked for JSON depth as it is read (see guardedBody). */
export function depthChecked(body: AsyncIterable<Uint8Array>, enveloped: boolean, maxBytes: number): AsyncGenerator<Uint8Array> {
  return guardedBody(body, enveloped ? new EnvelopedJsonDepthGuard() : new JsonDepthGuard(), maxBytes);
}
