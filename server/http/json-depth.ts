import { Code, ConnectError } from "@connectrpc/connect";

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
 * and gRPC with JSON): a 5-byte prefix (flags, big-endian length) before each
 * message, whose JSON is followed message by message.
 */
export class EnvelopedJsonDepthGuard {
  private header = Buffer.alloc(5);
  private headerHave = 0;
  private left = 0;
  private guard = new JsonDepthGuard();

  feed(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.left === 0 && this.headerHave < 5) {
        this.header[this.headerHave++] = bytes[i++]!;
        if (this.headerHave === 5) {
          this.left = this.header.readUInt32BE(1);
          this.guard = new JsonDepthGuard();
          if (this.left === 0) this.headerHave = 0;
        }
        continue;
      }
      const end = Math.min(bytes.length, i + this.left);
      this.guard.feed(bytes, i, end);
      this.left -= end - i;
      i = end;
      if (this.left === 0) this.headerHave = 0;
    }
  }
}

/**
 * A request body that is checked for JSON depth as it is read. Once too deep,
 * the rest (up to `maxBytes` in all) is read and dropped unparsed before the
 * error is raised: a request refused mid-body would otherwise leave its rest
 * unread, and an HTTP/1.1 connection could then neither carry the next
 * request nor be closed without resetting the answer away.
 */
export async function* depthChecked(body: AsyncIterable<Uint8Array>, enveloped: boolean, maxBytes: number): AsyncGenerator<Uint8Array> {
  const guard = enveloped ? new EnvelopedJsonDepthGuard() : new JsonDepthGuard();
  let failure: unknown;
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (failure !== undefined) {
      if (size > maxBytes) throw failure;
      continue;
    }
    try {
      guard.feed(chunk);
    } catch (err) {
      failure = err;
      continue;
    }
    yield chunk;
  }
  if (failure !== undefined) throw failure;
}
