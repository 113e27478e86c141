// Bundles the CLI (dist/snapdeploy.mjs) and the build-server agent
// (dist/server/agent.cjs, next to the server Dockerfile) with esbuild. One file each:
// the CLI starts faster than from hundreds of modules, and the agent image needs
// nothing but Node.js.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const define = { SNAPDEPLOY_VERSION: JSON.stringify(version) };
const common = {
  bundle: true,
  platform: "node",
  define,
  legalComments: "none",
  logLevel: "warning",
  sourcemap: true,
  minify: true,
};
rmSync("dist", { recursive: true, force: true });

await build({
  ...common,
  // Commands load their heavy modules (the Kubernetes client) on first use, so
  // --help and --version stay fast: code splitting keeps those in separate chunks.
  entryPoints: { snapdeploy: "src/cli/main.ts" },
  outdir: "dist/cli",
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  outExtension: { ".js": ".mjs" },
  format: "esm",
  // A native addon (the file watcher of `dev`): loaded from node_modules at run time.
  external: ["@parcel/watcher"],
  target: "node20",
  // CommonJS dependencies bundled into an ES module still call require().
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
});
mkdirSync("dist/server", { recursive: true });
await build({
  ...common,
  entryPoints: ["src/agent/main.ts"],
  outfile: "dist/server/agent.cjs",
  format: "cjs",
  // Debian bookworm's Node.js, which the build-server image uses.
  target: "node18",
});
copyFileSync("server/Dockerfile", "dist/server/Dockerfile");
