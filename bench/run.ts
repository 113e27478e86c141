/** `npm run bench -- NAME [args...]`: runs the benchmark bench/NAME.ts with the remaining arguments. */
const BENCHMARKS = ["sync", "build", "loop", "fuzz", "cache", "load"];
const name = process.argv[2];
if (!name || !BENCHMARKS.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${BENCHMARKS.join("|")}> [args...]\n`);
  process.exit(2);
}
process.argv.splice(2, 1);
await import(`./${name}.ts`);
