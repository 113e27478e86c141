/** The annotations and labels snapdeploy puts on the objects it changes. */
export const ANNOTATION = {
  snapshot: "snapdeploy.dev/snapshot",
  image: "snapdeploy.dev/image",
  user: "snapdeploy.dev/user",
  commit: "snapdeploy.dev/commit",
  dirty: "snapdeploy.dev/dirty",
  time: "snapdeploy.dev/time",
  /** On a workload deployed with --manifests: the digest of the objects applied with it (manifestsDigest). */
  manifests: "snapdeploy.dev/manifests",
  changeCause: "kubernetes.io/change-cause",
};
export const OWNER_LABEL = "snapdeploy.dev/owner";
export const PERSONAL_LABEL = "snapdeploy.dev/personal";
