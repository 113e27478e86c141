// Bundles the CLI (dist/cli/snapdeploy.cjs) and the build-server agent
// (dist/server/agent.cjs, next to the server Dockerfile) with esbuild. One file each:
// the CLI starts faster than from hundreds of modules, and the agent image needs
// nothing but Node.js.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

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

/**
 * In the CLI bundle, @kubernetes/client-node is a stand-in that asks bin/snapdeploy.cjs for
 * dist/cli/kube.cjs (compiled with its own code cache), or requires it when the bundle runs
 * without the bin. The client is three quarters of the CLI's code and only some commands
 * use it: the others (sync, build, a no-op deploy) neither read nor hold it.
 */
const kubeBundle = {
  name: "kube-bundle",
  setup(b) {
    b.onResolve({ filter: /^@kubernetes\/client-node$/ }, () => ({ path: "kube", namespace: "kube-bundle" }));
    b.onResolve({ filter: /^\.\/kube\.cjs$/ }, () => ({ path: "./kube.cjs", external: true }));
    b.onLoad({ filter: /.*/, namespace: "kube-bundle" }, () => ({
      contents: `const load = globalThis[Symbol.for("snapdeploy.kube")];
module.exports = load ? load() : require("./kube.cjs");`,
      loader: "js",
    }));
  },
};

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
  plugins: [kubeBundle],
  target: "node20",
  // import.meta.url (of the bundle) for the code that locates files next to it.
  define: { ...define, "import.meta.url": "__bundle_url" },
  banner: { js: "var __bundle_url = require('node:url').pathToFileURL(__filename).href;" },
});
/**
 * The names the CLI imports from @kubernetes/client-node (types aside): kube.cjs exports
 * these, so esbuild leaves out the rest of the client (all of it would be 3.5 MB).
 */
function kubeImports() {
  const names = new Set();
  const files = readdirSync("src", { recursive: true }).filter((f) => /\.tsx?$/.test(f));
  for (const f of files) {
    const text = readFileSync(join("src", f), "utf8");
    for (const m of text.matchAll(/import\s+(type\s+)?([^;]*?)\s+from\s+"@kubernetes\/client-node"/g)) {
      if (m[1]) continue;
      const list = /^\{([^}]*)\}$/s.exec(m[2].trim());
      if (!list) throw new Error(`src/${f}: import only named bindings from @kubernetes/client-node`);
      for (const part of list[1].split(",")) {
        const name = part.trim();
        if (name && !name.startsWith("type ")) names.add(name.split(/\s+as\s+/)[0]);
      }
    }
    if (/import\(\s*"@kubernetes\/client-node"/.test(text))
      throw new Error(`src/${f}: import @kubernetes/client-node statically (the bundle stands in for it)`);
  }
  return [...names].sort();
}
await build({
  ...common,
  stdin: {
    contents: `export { ${kubeImports().join(", ")} } from "@kubernetes/client-node";`,
    resolveDir: ".",
    loader: "js",
  },
  outfile: "dist/cli/kube.cjs",
  format: "cjs",
  target: "node20",
});
for (const file of ["dist/cli/snapdeploy.cjs", "dist/cli/kube.cjs"]) {
  // bin/snapdeploy.cjs reads the bundles as latin1, which is right only for ASCII (esbuild's
  // default charset escapes everything else).
  const text = readFileSync(file);
  if (text.some((b) => b > 0x7f))
    throw new Error(`${file} is not ASCII: bin/snapdeploy.cjs reads it as latin1`);
  // The bin runs the bundles as vm.Scripts, where import() has no loader: require what is not bundled.
  if (/\bimport\(/.test(text.toString("latin1")))
    throw new Error(`${file} calls import(): require modules left out of the bundle instead`);
}
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
