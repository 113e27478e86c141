#!/usr/bin/env node
// Runs the bundled CLI (dist/cli/snapdeploy.cjs), compiled with V8's code cache: a command
// that ran once before starts without parsing and compiling the functions it runs again
// (about 80 ms of a no-op sync on Node.js 20, which has no compile cache for ES modules).
//
// The cache is one file per command in ~/.cache/snapdeploy/compile (folder 0700, files
// 0600: compiled code is trusted as code, so it lives only where the user alone writes),
// named after the bundle's inode, size and mtime (a reinstall is a new name) and the
// Node.js version. V8 checks the rest (its version, flags, the source's length) and
// rejects a cache that does not fit; then the code is compiled as usual and the cache
// written anew at exit. Any failure of the cache only costs the compile.
//
// This file is CommonJS, like the bundle: Node.js starts a CommonJS entry point a little
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

const bundle = join(__dirname, "../dist/cli/snapdeploy.cjs");
// esbuild writes ASCII (it escapes the rest), which latin1 reads without decoding.
const source = readFileSync(bundle, "latin1");

// Each command compiles other functions; the first word that names one picks the file.
const COMMANDS = new Set(["init", "server", "sync", "build", "deploy", "run", "dev", "logs", "gc"]);
const command = process.argv.slice(2).find((a) => COMMANDS.has(a)) ?? "other";
let cacheDir;
let key;
let cached;
try {
  const st = statSync(bundle);
  const xdg = process.env.XDG_CACHE_HOME;
  cacheDir = join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), ".cache"), "snapdeploy", "compile");
  key = `${st.ino}-${st.size}-${Math.trunc(st.mtimeMs)}-${process.version}`;
  const file = join(cacheDir, `${key}.${command}.bin`);
  // Only a cache this user wrote, which nobody else may change.
  const own = statSync(file);
  if (!process.getuid || (own.uid === process.getuid() && (own.mode & 0o022) === 0))
    cached = readFileSync(file);
} catch {}

// The wrapper Node.js gives a CommonJS module.
const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
// The bundle has no import() left: what it does not bundle, it requires.
const script = new Script(wrapped, { filename: bundle, cachedData: cached });
let data;
if (key && (!cached || script.cachedDataRejected)) {
  // Taken at exit, when the command's functions are compiled; or earlier, when the CLI is
  // about to change V8's flags (a large job does), since V8 rejects a cache made under
  // other flags than the next process runs with.
  const take = () => {
    data ??= script.createCachedData();
  };
  process.once("snapdeploy:v8-flags", take);
  process.once("exit", () => {
    try {
      take();
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      const file = join(cacheDir, `${key}.${command}.bin`);
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, data, { mode: 0o600 });
      renameSync(tmp, file);
      // Caches of other installs or Node.js versions unused for a week are removed.
      const old = Date.now() - 7 * 86_400_000;
      for (const f of readdirSync(cacheDir)) {
        const other = join(cacheDir, f);
        if (!f.startsWith(`${key}.`) && statSync(other).mtimeMs < old) rmSync(other, { force: true });
      }
    } catch {}
  });
}

const cli = { exports: {} };
script.runInThisContext()(cli.exports, createRequire(bundle), cli, bundle, dirname(bundle));
cli.exports.main(process.argv.slice(2));
