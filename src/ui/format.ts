/** Small formatting helpers shared by the commands' output. */
import type { PhaseCounts, PhaseName } from "./events.js";

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}

export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** "1 file", "2 files". */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What a phase's counts say, for a line: "1234 files, 5.6 MiB"; "" when they say nothing. */
export function countsText(name: PhaseName, c: PhaseCounts): string {
  const parts: string[] = [];
  if (name === "scan" && c.files !== undefined) {
    parts.push(count(c.files, "file"));
    if (c.bytes !== undefined) parts.push(bytes(c.bytes));
  }
  if (name === "check" && c.exists !== undefined)
    parts.push(c.exists ? "already in the registry" : "not in the registry");
  if (name === "sync" && c.files !== undefined) {
    parts.push(count(c.files, "file"));
    if (c.bytes !== undefined) parts.push(`${bytes(c.bytes)} sent`);
  }
  if (name === "build" && c.steps !== undefined)
    parts.push(`${count(c.steps, "step")}, ${c.cached ?? 0} cached`);
  if (name === "push" && c.layers !== undefined) parts.push(count(c.layers, "layer"));
  if (name === "rollout" && c.targets)
    for (const [t, r] of Object.entries(c.targets)) parts.push(`${t} ${r.ready}/${r.desired} ready`);
  return parts.join(", ");
}

/** A finished phase: "0.12s (1234 files, 5.6 MiB)". */
export function phaseText(name: PhaseName, secs: number, c: PhaseCounts): string {
  const what = countsText(name, c);
  return `${seconds(secs * 1000)}${what ? ` (${what})` : ""}`;
}
