import type { ServiceImpl } from "@connectrpc/connect";
import type { VersionService } from "../../../gen/metal/api/v1/version_pb.js";

export function createVersionService(build: { version: string; revision: string }): ServiceImpl<typeof VersionService> {
  return {
    get() {
      return { version: { version: build.version, revision: build.revision, nodeVersion: process.version } };
    },
  };
}
