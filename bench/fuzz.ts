/**
 * Fuzz run: the unit suite's hostile-session property (test/helpers/agent-fuzz.ts) for many
 * more cases against the agent in this process (no cluster), with a random seed unless one is
 * given. Prints the seed, the case count, the agent's answers by operation and code, and the
 * operations that succeeded; a failure prints the counterexample and exits 1.
 *
 *   npm run bench -- fuzz [cases=20000] [seed]
 */
import { fuzzSessions, type Tally } from "../test/helpers/fuzz/run.js";

const cases = Number(process.argv[2] ?? 20_000);
const seed = Number(process.argv[3] ?? Math.floor(Math.random() * 2 ** 31));
const tally: Tally = { cases: 0, errors: {}, ok: {} };
const t0 = Date.now();
process.stdout.write(`fuzz: ${cases} sessions, seed ${seed}\n`);
try {
  await fuzzSessions({ numRuns: cases, seed, tally });
} catch (e) {
  // A counterexample can be long (paths of thousands of characters): its head and the error's end.
  const m = (e as Error).message;
  const cause = (e as Error).cause as Error | undefined;
  const text = m.length > 6000 ? `${m.slice(0, 3000)}\n[…]\n${m.slice(-3000)}` : m;
  process.stdout.write(
    `FAILED after ${tally.cases} cases (seed ${seed}):\n${text}\n${cause ? `cause: ${cause.stack ?? cause}\n` : ""}`,
  );
  process.exitCode = 1;
}
const secs = (Date.now() - t0) / 1000;
const rows = (m: Record<string, number>) =>
  Object.entries(m)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `| ${k} | ${n} |`)
    .join("\n");
process.stdout.write(
  `\n${tally.cases} cases passed in ${secs.toFixed(1)} s (${(tally.cases / secs).toFixed(0)}/s)\n\n` +
    `| refused (step:code) | count |\n|---|---|\n${rows(tally.errors)}\n\n| succeeded | count |\n|---|---|\n${rows(tally.ok)}\n`,
);
