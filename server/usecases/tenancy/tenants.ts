import { Code, ConnectError } from "@connectrpc/connect";
import type { Tenant as MdTenant } from "../../../gen/masterdata/v1/tenant_pb.js";
import type { Masterdata } from "./masterdata.js";
import { type MemberView, tenantMembers } from "./memberships.js";

/** A tenant and its members. */
export async function getTenant(md: Masterdata, tenantId: string): Promise<{ tenant: MdTenant; members: MemberView[] }> {
  const { tenant } = await md.tenants.get({ id: tenantId });
  return { tenant: tenant!, members: await tenantMembers(md, tenantId) };
}

export interface TenantChange {
  tenantId: string;
  /** 0: whatever is current. */
  version: bigint;
  name?: string;
  description?: string;
}

/** Changes name and description only; quotas, annotations and labels stay as the operators set them. */
export async function updateTenant(md: Masterdata, c: TenantChange): Promise<MdTenant> {
  return retryUnversioned(c.version, async () => {
    const { tenant: current } = await md.tenants.get({ id: c.tenantId });
    const version = current!.meta!.version;
    if (c.version !== 0n && c.version !== version) {
      throw new ConnectError(`tenant "${c.tenantId}" is at version ${version}, the update was for version ${c.version}; read it again`, Code.Aborted);
    }
    const { tenant } = await md.tenants.update({
      tenant: { ...current!, name: c.name ?? current!.name, description: c.description ?? current!.description },
    });
    return tenant!;
  });
}

/**
 * An update without a version (0) applies to whatever is current: when a
 * concurrent change wins the optimistic lock, it reads again and retries (a
 * few times); an update naming a version gets Aborted as it is.
 */
export async function retryUnversioned<T>(version: bigint, attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (err) {
      if (version !== 0n || tries >= 5 || ConnectError.from(err).code !== Code.Aborted) throw err;
    }
  }
}
