/** `snapdeploy gc`'s client side: one gc operation on the build server (see GcRequest). */
import { isUserError, UserError } from "../errors.js";
import type { ClusterAccess } from "../kube/access.js";
import type { GcReply, GcRequest } from "../protocol/messages.js";
import { withAgent } from "./connect.js";

/** What went, or with dryRun what would go. */
export async function serverGc(
  cluster: ClusterAccess,
  namespace: string,
  req: Omit<GcRequest, "t">,
): Promise<GcReply> {
  try {
    return await withAgent(cluster, namespace, async (s) => {
      await s.conn.send({ t: "gc", ...req });
      return (await s.conn.expect("gc")) as unknown as GcReply;
    });
  } catch (e) {
    // An agent from before gc existed does not know the operation.
    if (isUserError(e) && /unknown operation "gc"/.test(e.message))
      throw new UserError("server", `the build server in namespace ${namespace} is too old for gc`, {
        hint: "upgrade it: snapdeploy server install (with the flags it was installed with)",
      });
    throw e;
  }
}
