import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type BodyGuard, EnvelopeReader, guardedBody } from "./guarded-body.js";

/**
 * Connect answers a binary request it cannot decode (truncated, a wrong wire
 * type, a string that is not UTF-8) with Internal, as if the server had
 * failed. It is the caller's mistake: each binary message is decoded here
 * first, before Connect sees it, and refused with InvalidArgument. Decoding
 * twice costs microseconds for this API's messages. Compressed messages are
 * left to Connect (they would have to be decompressed twice).
 */
const undecodable = (err: unknown) => new ConnectError(`the request is not a valid binary message: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);

function check(desc: DescMessage, bytes: Uint8Array): void {
  try {
    fromBinary(desc, bytes);
  } catch (err) {
    throw undecodable(err);
  }
}

/** One unenveloped message (Connect unary with application/proto): decoded once the body is complete. */
class UnaryBinaryGuard implements BodyGuard {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  constructor(
    private readonly desc: DescMessage,
    private readonly maxBytes: number,
  ) {}

  feed(bytes: Uint8Array): void {
    this.size += bytes.length;
    // Too large: Connect refuses the size itself.
    if (this.size <= this.maxBytes) this.parts.push(bytes);
  }

  end(): void {
    if (this.size <= this.maxBytes) check(this.desc, Buffer.concat(this.parts));
  }
}

/** Enveloped messages (gRPC, gRPC-Web, Connect streaming): each decoded as soon as it is complete. */
class EnvelopedBinaryGuard implements BodyGuard {
  private message: Buffer | undefined;
  private have = 0;
  private readonly reader: EnvelopeReader;

  constructor(desc: DescMessage, maxBytes: number) {
    this.reader = new EnvelopeReader({
      start: (flags, length) => {
        const compressed = (flags & 0x01) !== 0;
        this.message = compressed || length > maxBytes ? undefined : Buffer.alloc(length);
        this.have = 0;
      },
      data: (bytes, from, to) => {
        if (!this.message) return;
        this.message.set(bytes.subarray(from, to), this.have);
        this.have += to - from;
      },
      end: () => {
        if (this.message) check(desc, this.message);
        this.message = undefined;
      },
    });
  }

  feed(bytes: Uint8Array): void {
    this.reader.feed(bytes);
  }
}

/** A request body whose binary messages are decoded as they arrive (see guardedBody). */
export function binaryChecked(body: AsyncIterable<Uint8Array>, desc: DescMessage, enveloped: boolean, maxBytes: number): AsyncGenerator<Uint8Array> {
  return guardedBody(body, enveloped ? new EnvelopedBinaryGuard(desc, maxBytes) : new UnaryBinaryGuard(desc, maxBytes), maxBytes);
}
