/**
 * Checks on a request body while it is read, before Connect parses it: a
 * guard sees every chunk (and the end) and throws a ConnectError to refuse.
 */
export interface BodyGuard {
  feed(bytes: Uint8Array): void;
  /** The body is complete. */
  end?(): void;
}

/**
 * The body as Connect reads it, each chunk shown to the guard before it is
 * handed on. Once refused, the rest (up to `maxBytes` in all) is read and
 * dropped unparsed before the error is raised: a request refused mid-body
 * would otherwise leave its rest unread, and an HTTP/1.1 connection could
 * then neither carry the next request nor be closed without resetting the
 * answer away.
 */
export async function* guardedBody(body: AsyncIterable<Uint8Array>, guard: BodyGuard, maxBytes: number): AsyncGenerator<Uint8Array> {
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
  if (failure === undefined) guard.end?.();
  if (failure !== undefined) throw failure;
}

/** What an EnvelopeReader reports of each enveloped message. */
export interface EnvelopeHandler {
  start(flags: number, length: number): void;
  data(bytes: Uint8Array, from: number, to: number): void;
  end(): void;
}

/**
 * Splits a stream of enveloped messages (Connect streaming, gRPC, gRPC-Web:
 * a flags byte and a big-endian 32-bit length before each message) chunk by
 * chunk, however the chunks cut it.
 */
export class EnvelopeReader {
  private readonly header = Buffer.alloc(5);
  private headerHave = 0;
  private left = 0;

  constructor(private readonly handler: EnvelopeHandler) {}

  feed(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.left === 0 && this.headerHave < 5) {
        this.header[this.headerHave++] = bytes[i++]!;
        if (this.headerHave === 5) {
          this.left = this.header.readUInt32BE(1);
          this.handler.start(this.header[0]!, this.left);
          if (this.left === 0) this.finish();
        }
        continue;
      }
      const end = Math.min(bytes.length, i + this.left);
      this.handler.data(bytes, i, end);
      this.left -= end - i;
      i = end;
      if (this.left === 0) this.finish();
    }
  }

  private finish(): void {
    this.headerHave = 0;
    this.handler.end();
  }
}
