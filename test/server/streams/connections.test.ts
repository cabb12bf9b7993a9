import { describe, expect, it } from "vitest";
import { ConnectionRegistry } from "../../../server/sessions/connections.js";

describe("ConnectionRegistry", () => {
  it("lists what is connected, records heartbeats, and forgets closed connections", () => {
    const r = new ConnectionRegistry("replica-a");
    const a = r.register("switch", "leaf01", "p1", new Date(1000));
    r.register("bmc", "bmc-p1", "p1", new Date(2000));
    a.touch(new Date(5000));
    expect(r.list({ kind: "switch" })).toEqual([{ kind: "switch", id: "leaf01", partition: "p1", replica: "replica-a", connectedAt: new Date(1000), lastHeartbeat: new Date(5000) }]);
    expect(r.list({ partition: "p1" }).map((c) => c.id)).toEqual(["bmc-p1", "leaf01"]);
    a.close();
    expect(a.signal.aborted).toBe(true);
    expect(r.list().map((c) => c.id)).toEqual(["bmc-p1"]);
  });

  it("a reconnecting daemon replaces its old stream, and closing the old one leaves the new one registered", () => {
    const r = new ConnectionRegistry();
    const old = r.register("switch", "leaf01", "p1");
    const fresh = r.register("switch", "leaf01", "p1");
    expect(old.signal.aborted).toBe(true);
    expect(fresh.signal.aborted).toBe(false);
    old.close();
    expect(r.list()).toHaveLength(1);
    expect(r.list()[0]).toBe(fresh.connection);
    r.closeAll();
    expect(fresh.signal.aborted).toBe(true);
    expect(r.list()).toEqual([]);
  });
});
