#!/usr/bin/env node
// Runs the bundled CLI (dist/cli/snapdeploy.cjs), compiled with V8's code cache: a command
// that ran once before starts without parsing and compiling the functions it runs again
// (about 80 ms of a no-op sync on Node.js 20, which has no compile cache for ES modules).
// The Kubernetes client is a bundle of its own (dist/cli/kube.cjs, three quarters of the
// code), loaded the same way by the commands that need it: the others neither read nor
// hold it.
//
// The cache is one file per bundle and command in ~/.cache/snapdeploy/compile (folder
// 0700, files 0600: compiled code is trusted as code, so it lives only where the user alone
// writes), named after the bundle's inode, size and mtime (a reinstall is a new name) and
// the Node.js version. V8 checks the rest (its version, flags, the source's length) and
// rejects a cache that does not fit; then the code is compiled as usual and the cache
// written anew at exit. Any failure of the cache only costs the compile.
//
// This file is CommonJS, like the bundles: Node.js starts a CommonJS entry point a little
// faster than an ES module.
const {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} = require("node:fs");
const { createRequire } = require("node:module");
const { homedir } = require("node:os");
const { dirname, isAbsolute, join } = require("node:path");
const { Script } = require("node:vm");

// Each command compiles other functions; the first word that names one picks the file.
const COMMANDS = new Set(["init", "server", "sync", "build", "deploy", "run", "dev", "logs", "gc"]);
const command = process.argv.slice(2).find((a) => COMMANDS.has(a)) ?? "other";
const xdg = process.env.XDG_CACHE_HOME;
const cacheDir = join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), ".cache"), "snapdeploy", "compile");
/** The caches to write at exit: those missing or rejected. */
const toWrite = [];
/** A bundle's part of its cache files' names. */
function keyOf(file) {
  const st = statSync(file);
  return `${st.ino}-${st.size}-${Math.trunc(st.mtimeMs)}-${process.version}`;
}

/** Compiles and runs the CommonJS bundle `file` (named `name` in its cache) and returns its exports. */
function load(file, name) {
  // esbuild writes ASCII (it escapes the rest), which latin1 reads without decoding.
  const source = readFileSync(file, "latin1");
  let cacheFile;
  let cached;
  try {
    const key = keyOf(file);
    cacheFile = join(cacheDir, `${key}.${command}${name === "cli" ? "" : `.${name}`}.bin`);
    // Only a cache this user wrote, which nobody else may change.
    const own = statSync(cacheFile);
    if (!process.getuid || (own.uid === process.getuid() && (own.mode & 0o022) === 0))
      cached = readFileSync(cacheFile);
  } catch {}
  // The wrapper Node.js gives a CommonJS module.
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
  // The bundles have no import() left: what they do not bundle, they require.
  const script = new Script(wrapped, { filename: file, cachedData: cached });
  if (cacheFile && (!cached || script.cachedDataRejected)) toWrite.push({ script, file: cacheFile });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
  return mod.exports;
}

// Taken at exit, when the command's functions are compiled; or earlier, when the CLI is
// about to change V8's flags (a large job does), since V8 rejects a cache made under other
// flags than the next process runs with.
const take = () => {
  for (const w of toWrite) w.data ??= w.script.createCachedData();
};
process.once("snapdeploy:v8-flags", take);
process.once("exit", () => {
  if (!toWrite.length) return;
  try {
    take();
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    for (const w of toWrite) {
      const tmp = `${w.file}.${process.pid}.tmp`;
      writeFileSync(tmp, w.data, { mode: 0o600 });
      renameSync(tmp, w.file);
    }
    // Caches of other installs or Node.js versions unused for a week are removed (this
    // install's are kept, of both bundles, loaded or not).
    const keys = [cli, kube].map(keyOf);
    const old = Date.now() - 7 * 86_400_000;
    for (const f of readdirSync(cacheDir)) {
      const other = join(cacheDir, f);
      if (!keys.some((k) => f.startsWith(`${k}.`)) && statSync(other).mtimeMs < old)
        rmSync(other, { force: true });
    }
  } catch {}
});

const cli = join(__dirname, "../dist/cli/snapdeploy.cjs");
// The bundle's stand-in for @kubernetes/client-node asks for it here (scripts/bundle.mjs).
const kube = join(__dirname, "../dist/cli/kube.cjs");
let kubeExports;
globalThis[Symbol.for("snapdeploy.kube")] = () => {
  kubeExports ??= load(kube, "kube");
  return kubeExports;
};

load(cli, "cli").main(process.argv.slice(2));
