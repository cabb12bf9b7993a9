import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { printable } from "../../edge/common/text.js";
import { EventServiceSendRequestSchema } from "../../gen/metal/infra/v1/event_pb.js";
import { refuseControlCharacters } from "../../server/interceptors/strings.js";

describe("text a daemon forwards from hardware and tools", () => {
  it("keeps tab, line feed and carriage return and replaces every other control character, so the control plane takes it", () => {
    const raw = "line 1\r\n\tvtysh: \u001b[1merror\u001b[0m\u0000 \u0007bell \u007f";
    const safe = printable(raw);
    expect(safe).toBe("line 1\r\n\tvtysh: ?[1merror?[0m? ?bell ?");
    const request = (message: string) => create(EventServiceSendRequestSchema, { partition: "p1", events: [{ machineId: "m", message }] });
    expect(() => refuseControlCharacters(EventServiceSendRequestSchema, request(raw))).toThrow("events[0].message: must not contain NUL characters");
    expect(() => refuseControlCharacters(EventServiceSendRequestSchema, request(safe))).not.toThrow();
  });
});
