import { scanSnapshot } from "../src/context/scan.js";
const root = process.argv[2] as string;
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  const s = await scanSnapshot({ root });
  console.log(`walk ${(performance.now() - t).toFixed(0)} ms`, s.stats.files);
}
