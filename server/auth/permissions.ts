import { create, type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { AdminRole, type Permission, PermissionSchema, permission, Visibility } from "../../gen/metal/api/v1/common_pb.js";

/**
 * Permissions of services whose contracts are not ours to annotate: the gRPC
 * health protocol is public; masterdata (shared with other control planes, so
 * free of metal's options) is for operators: reads for viewers, the rest for admins.
 */
function fallbackPermission(method: DescMethod): Permission {
  const service = method.parent.typeName;
  if (service === "grpc.health.v1.Health") return create(PermissionSchema, { visibility: Visibility.PUBLIC });
  if (service.startsWith("masterdata.v1.") && ["Get", "Find", "GetHistory"].includes(method.name)) {
    return create(PermissionSchema, { adminRole: AdminRole.VIEWER });
  }
  // Undeclared means operator admins only: a forgotten declaration fails closed.
  return create(PermissionSchema, { adminRole: AdminRole.ADMIN });
}

const cache = new WeakMap<DescMethod, Permission>();

/** The permission a method declares in its proto options, or the fallback above. */
export function permissionOf(method: DescMethod): Permission {
  let p = cache.get(method);
  if (!p) {
    p = hasOption(method, permission) ? getOption(method, permission) : fallbackPermission(method);
    cache.set(method, p);
  }
  return p;
}
