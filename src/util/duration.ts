/**
 * Durations as people type them for flags and snapdeploy.yaml: a whole number of seconds
 * (`300`), or hours, minutes and seconds in that order, each a whole number with its unit
 * (`90s`, `5m`, `1h30m`, `2h0m5s`), as Go and kubectl print them. Nothing else: no
 * fractions, no spaces, no words, so a typo is refused rather than read as something else.
 */
const UNITS = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
/** Ages (how long ago, e.g. gc's --older-than) may also start with days: `7d`, `1d12h`. */
const DAYS = /^(\d+)d(.*)$/;

/** The longest wait a timer can hold (2^31-1 ms, about 24 days), in seconds. */
export const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** What parseDuration accepts, for messages. */
export const DURATION_SYNTAX =
  "a whole number of seconds (300) or hours, minutes, seconds like 90s, 5m, 1h30m";

/** What parseDuration accepts with days, for messages. */
export const AGE_SYNTAX = "days, hours, minutes, seconds like 7d, 1d12h, 36h, or a whole number of seconds";

/**
 * The number of seconds `text` says, or undefined when it is not a duration (see above).
 * With `days`, a leading `<n>d` is allowed too (not for timeouts, where a day is a typo).
 */
export function parseDuration(text: string, opts: { days?: boolean } = {}): number | undefined {
  const d = opts.days ? DAYS.exec(text) : null;
  if (d) {
    const rest = d[2] === "" ? 0 : parseDuration(d[2] as string);
    return rest === undefined || /^\d+$/.test(d[2] as string) ? undefined : safe(Number(d[1]) * 86400 + rest);
  }
  if (/^\d+$/.test(text)) return safe(Number(text));
  const m = UNITS.exec(text);
  if (!m || text === "") return undefined;
  const [h, min, s] = [m[1], m[2], m[3]].map((x) => Number(x ?? 0)) as [number, number, number];
  return safe(h * 3600 + min * 60 + s);
}

function safe(n: number): number | undefined {
  return Number.isSafeInteger(n) ? n : undefined;
}
