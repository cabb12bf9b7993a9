import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";

/**
 * How far the server's clock is ahead of metal-bmc's, from the relay open's
 * sent_at (the network's delay included, which errs by milliseconds); 0 when
 * metal-bmc did not send it.
 */
export function clockOffsetMs(sentAt: Timestamp | undefined, receivedAtMs: number): number {
  return sentAt ? receivedAtMs - timestampMs(sentAt) : 0;
}

/** When the machine printed a chunk of console output, on the server's clock; undefined when metal-bmc did not say. */
export function producedAtOnServer(producedAt: Timestamp | undefined, offsetMs: number): Date | undefined {
  return producedAt ? new Date(timestampMs(producedAt) + offsetMs) : undefined;
}
