// Bundles the CLI (dist/cli/snapdeploy.cjs) and the build-server agent
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
  // One CommonJS file, so that bin/snapdeploy.cjs can compile it with V8's code cache (see
  // there): Node.js 20 has no compile cache for ES modules. Modules a command imports
  // lazily (the Kubernetes client, the YAML editor) are bundled too, but esbuild wraps
  // them so that they are only evaluated when first imported.
  entryPoints: ["src/cli/main.ts"],
  outfile: "dist/cli/snapdeploy.cjs",
  format: "cjs",
  // A native addon (the file watcher of `dev`): loaded from node_modules at run time.
  external: ["@parcel/watcher"],
  target: "node20",
  // import.meta.url (of the bundle) for the code that locates files next to it.
  define: { ...define, "import.meta.url": "__bundle_url" },
  banner: { js: "var __bundle_url = require('node:url').pathToFileURL(__filename).href;" },
});
// bin/snapdeploy.cjs reads the bundle as latin1, which is right only for ASCII (esbuild's
// default charset escapes everything else).
const cli = readFileSync("dist/cli/snapdeploy.cjs");
if (cli.some((b) => b > 0x7f))
  throw new Error("dist/cli/snapdeploy.cjs is not ASCII: bin/snapdeploy.cjs reads it as latin1");
// The bin runs the bundle as a vm.Script, where import() has no loader: require what is not bundled.
if (/\bimport\(/.test(cli.toString("latin1")))
  throw new Error("dist/cli/snapdeploy.cjs calls import(): require modules left out of the bundle instead");
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
