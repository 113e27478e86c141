/**
 * The public images `server install` uses when given none: BuildKit's rootless image for
 * the builder (buildctl is copied from it for the agent) and Node.js for the agent, whose
 * code (one bundled file) comes in a ConfigMap. cluster/lib/common.sh names the same
 * images for the local cluster's stand-ins.
 */
export const BUILDKIT_VERSION = "v0.34.2";
/** BuildKit's own rootless image (uid 1000, rootlesskit as entrypoint). */
export const DEFAULT_BUILDKIT_IMAGE = `docker.io/moby/buildkit:${BUILDKIT_VERSION}-rootless`;
/** BuildKit's own image for a daemon run as root (builder "buildkit-privileged"). */
export const DEFAULT_BUILDKIT_PRIVILEGED_IMAGE = `docker.io/moby/buildkit:${BUILDKIT_VERSION}`;
/** Node.js 24 (LTS) on Debian bookworm, slim; it has a non-root user 1000. */
export const DEFAULT_AGENT_IMAGE = "docker.io/library/node:24.22.3-bookworm-slim";
