import { fuzzSessions, type Tally } from "../test/helpers/fuzz/run.js";
const t: Tally = { cases: 0, errors: {}, ok: {} };
const t0 = Date.now();
await fuzzSessions({ numRuns: Number(process.argv[2] ?? 200), seed: Number(process.argv[3] ?? 1), tally: t });
console.log(Date.now() - t0, "ms", JSON.stringify(t));
