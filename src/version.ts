/** The package version, stamped into the bundles at build time (scripts/bundle.mjs). */
declare const SNAPDEPLOY_VERSION: string | undefined;
export const VERSION: string = typeof SNAPDEPLOY_VERSION === "string" ? SNAPDEPLOY_VERSION : "dev";
