#!/usr/bin/env node
// Node.js 22.1+ keeps the compiled bundle on disk between runs (a no-op on older versions).
import module from "node:module";

module.enableCompileCache?.();
const { main } = await import("../dist/cli/snapdeploy.mjs");
main(process.argv.slice(2));
