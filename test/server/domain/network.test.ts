import { describe, expect, it } from "vitest";
import { childCount, formatAddress, formatPrefix, type Prefix, parseAddress, parsePrefix, usableCount, usableRange } from "../../../server/domain/ip-math.js";
import { childPlan, FamilyChoice, familyUse, NetworkKind, operatorNetworkProblems } from "../../../server/domain/network.js";

const P = (s: string) => parsePrefix(s) as Prefix;

describe("ip math", () => {
  it.each(["10.0.0.1", "255.255.255.255", "::", "2001:db8::1", "fe80::1:2:3:4", "2001:db8:0:0:1::"])("round-trips %s", (a) => {
    const parsed = parseAddress(a)!;
    expect(parseAddress(formatAddress(parsed))).toEqual(parsed);
  });

  it("formats IPv6 the RFC 5952 way", () => {
    expect(formatAddress(parseAddress("2001:0db8:0000:0000:0000:0000:0000:0001")!)).toBe("2001:db8::1");
    expect(formatAddress(parseAddress("2001:db8:0:1:0:0:0:1")!)).toBe("2001:db8:0:1::1");
  });

  it.each([
    ["10.0.0.0/33", "invalid prefix length"],
    ["10.0.0.1/24", "host bits set"],
    ["10.0.0.0", "not a CIDR"],
    ["nonsense/8", "not an IP address"],
    ["2001:db8::/129", "invalid prefix length"],
  ])("refuses %s", (s, message) => {
    expect(parsePrefix(s)).toContain(message);
  });

  it("reserves network and broadcast addresses where they exist", () => {
    expect(usableCount(P("10.0.0.0/24"))).toBe(254n);
    expect(usableCount(P("10.0.0.0/31"))).toBe(2n);
    expect(usableCount(P("10.0.0.1/32"))).toBe(1n);
    expect(usableRange(P("2001:db8::/64")).first).toBe(P("2001:db8::/64").network + 1n);
    expect(childCount(P("2001:db8::/48"), 64)).toBe(65536n);
    expect(formatPrefix(P("2001:db8::/48"))).toBe("2001:db8::/48");
  });
});

describe("operator network rules", () => {
  const base = { kind: NetworkKind.SUPER, partition: "p", prefixes: ["10.0.0.0/16"], destinationPrefixes: [], defaultChildLengths: { ipv4: 22 }, nat: false };
  it("accepts a well-formed super network", () => {
    expect(operatorNetworkProblems(base)).toEqual([]);
  });
  it.each([
    ["v6 length without v6 prefix", { defaultChildLengths: { ipv4: 22, ipv6: 64 } }, "default_child_prefix_length.ipv6"],
    ["child lengths on external", { kind: NetworkKind.EXTERNAL, defaultChildLengths: { ipv4: 24 } }, "default_child_prefix_length.ipv4"],
    ["no prefixes", { prefixes: [] }, "prefixes"],
  ])("refuses %s", (_n, patch, path) => {
    expect(operatorNetworkProblems({ ...base, ...patch }).map((p) => p.path)).toContain(path);
  });
});

describe("child plans", () => {
  const supers = [P("10.0.0.0/16"), P("2001:db8::/48")];
  it("takes every family by default, or the one asked for", () => {
    expect(childPlan(supers, { ipv4: 22, ipv6: 64 }, {}, FamilyChoice.ANY)).toEqual({
      ok: true,
      plan: [
        { family: 4, length: 22 },
        { family: 6, length: 64 },
      ],
    });
    expect(childPlan(supers, { ipv4: 22, ipv6: 64 }, { ipv6: 56 }, FamilyChoice.V6)).toEqual({ ok: true, plan: [{ family: 6, length: 56 }] });
    expect(childPlan([P("10.0.0.0/16")], { ipv4: 22 }, {}, FamilyChoice.V6)).toMatchObject({ ok: false });
  });
});

describe("consumption", () => {
  it("counts usable addresses and default-size child slots", () => {
    const use = familyUse([P("10.0.0.0/16"), P("10.1.0.0/24")], 4, 22, 3, 2);
    expect(use).toEqual({ availableIps: 65534n + 254n, usedIps: 3n, availablePrefixes: 64n, usedPrefixes: 2n });
    expect(familyUse([P("2001:db8::/32")], 6, undefined, 0, 0).availableIps).toBe((1n << 64n) - 1n);
  });
});
