import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** Asserts that a call fails with the given Connect code and a message containing `text`. */
export async function expectCode(call: Promise<unknown>, code: Code, text?: string): Promise<ConnectError> {
  let caught: unknown;
  try {
    await call;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${Code[code]}, the call succeeded`).toBeDefined();
  const ce = ConnectError.from(caught);
  expect(Code[ce.code], ce.message).toBe(Code[code]);
  if (text !== undefined) expect(ce.rawMessage).toContain(text);
  return ce;
}
