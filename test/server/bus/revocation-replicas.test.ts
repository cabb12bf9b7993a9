import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokenService } from "../../../gen/metal/admin/v1/token_pb.js";
import { AdminRole } from "../../../gen/metal/api/v1/common_pb.js";
import { UserService } from "../../../gen/metal/api/v1/user_pb.js";
import { createMqttBus, type MqttBus } from "../../../server/bus/mqtt-bus.js";
import { expectCode } from "../../helpers/expect.js";
import { type PrivateBroker, startPrivateBroker } from "../../helpers/mosquitto.js";
import { type SharedDbReplicas, startSharedDbReplicas } from "../../helpers/shared-db-replicas.js";

// Two control-plane replicas on one PostgreSQL database, their MQTT buses on the real Mosquitto.
let broker: PrivateBroker;
let replicas: SharedDbReplicas;
const buses: MqttBus[] = [];

beforeAll(async () => {
  broker = await startPrivateBroker();
  replicas = await startSharedDbReplicas(["A", "B"], {
    teardown: "manual",
    async options(id) {
      const bus = await createMqttBus({ url: broker.url, prefix: "metal", replicaId: id });
      buses.push(bus);
      // Each knows the other is alive (the replica table's heartbeat says so in production).
      return { bus, liveReplicas: async () => [id === "A" ? "B" : "A"] };
    },
  });
});

afterAll(async () => {
  await replicas?.stop();
  await Promise.all(buses.map((b) => b.close()));
  await broker?.dispose();
});

describe("a token revoked on replica A", () => {
  it("is refused on replica B as soon as the revoke returned, although B had it cached", async () => {
    const {
      replicas: [a, b],
      adminToken,
    } = replicas;
    const { token, secret } = await a.client(AdminTokenService, adminToken).create({ subject: "olga", roles: { adminRole: AdminRole.VIEWER } });
    // B verifies it, and keeps the verified row for its cache bound (5 s).
    expect((await b.client(UserService, secret).get({})).user?.subject).toBe("olga");
    await a.client(AdminTokenService, adminToken).revoke({ id: token!.id });
    await expectCode(b.client(UserService, secret).get({}), Code.Unauthenticated, "revoked");
  });
});
