/** What an absent snapdeploy.yaml means; the schema's defaults are these (unit-tested). */
export const DEFAULT_CONFIG = {
  image: { dockerfile: "Dockerfile", buildArgs: {}, tagPrefix: "snap-", secrets: [] },
  deploy: { targets: [], timeout: 300 },
  dev: { sync: [], rebuildOn: [], run: [] },
  context: { allowSecrets: [] as string[] },
  server: { namespace: "snapdeploy" },
};
