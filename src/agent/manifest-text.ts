/**
 * A patched manifest's canonical text (protocol/manifest.ts), made from the text of the
 * manifest it was patched from: the entries both share are copied as slices of the old
 * text, and only the lines of the entries a diff put are written anew. A one-file sync of
 * 10k entries then hashes the text without first making 10k lines again.
 */
import { canonicalLine, type Entry } from "../protocol/manifest.js";

/**
 * The canonical text of `out`, where `out` is `base` patched (validatePatched: what it keeps
 * of `base` are the very same objects, in order) and `baseText` is `base`'s canonical text.
 */
export function patchedText(base: readonly Entry[], baseText: string, out: readonly Entry[]): string {
  const parts: string[] = [];
  /** Where base[i]'s line starts in baseText. */
  let off = 0;
  let i = 0;
  // The run of base's text copied next: [runStart, runEnd).
  let runStart = 0;
  let runEnd = 0;
  const lineEnd = (from: number) => {
    const nl = baseText.indexOf("\n", from);
    if (nl < 0) throw new Error("the base text has fewer lines than the base has entries");
    return nl + 1;
  };
  const flush = () => {
    if (runEnd > runStart) parts.push(baseText.slice(runStart, runEnd));
    runStart = runEnd = 0;
  };
  for (const e of out) {
    // Base entries removed or replaced before (or at) e's path.
    for (let b = base[i]; b !== undefined && b !== e && b.path <= e.path; b = base[++i]) off = lineEnd(off);
    if (base[i] === e) {
      const end = lineEnd(off);
      if (runEnd !== off) {
        flush();
        runStart = off;
      }
      runEnd = end;
      off = end;
      i++;
    } else {
      flush();
      parts.push(canonicalLine(e));
    }
  }
  flush();
  return parts.join("");
}
