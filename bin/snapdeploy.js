#!/usr/bin/env node
import { main } from "../dist/snapdeploy.mjs";

main(process.argv.slice(2));
