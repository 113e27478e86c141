#!/usr/bin/env node
import { main } from "../dist/cli/snapdeploy.mjs";

main(process.argv.slice(2));
