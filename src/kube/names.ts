/**
 * Names and label values made from other names, kept valid: Kubernetes refuses a name
 * over its length limit or one that ends in `-`, which cutting a long name can give.
 */
import { createHash } from "node:crypto";

/** Characters of the hash that ends a shortened name: 8 hex digits, 32 bits. */
const HASH_LENGTH = 8;

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** A DNS-1123 label: at most 63 of [a-z0-9-], starting and ending alphanumeric. */
export function isDnsLabel(s: string, max = 63): boolean {
  return s.length <= max && LABEL.test(s);
}

/** A label value: empty, or at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric. */
export function isLabelValue(s: string): boolean {
  return s.length <= 63 && LABEL_VALUE.test(s);
}

/**
 * `text` itself when it is a DNS-1123 label of at most `max` characters; otherwise a
 * label made from it: lower-cased, other characters turned into `-`, cut, and ended
 * with a hash of the whole of `text`, so two texts that differ only after the cut (or
 * only in the characters replaced) still give two names. Deterministic.
 */
export function dnsLabel(text: string, max = 63): string {
  if (isDnsLabel(text, max)) return text;
  return shorten(text.toLowerCase().replace(/[^a-z0-9]/g, "-"), text, max, /[^a-z0-9]+/);
}

/** Like dnsLabel, for a label value (which also allows upper case, `_` and `.`). */
export function labelValue(text: string): string {
  if (isLabelValue(text)) return text;
  return shorten(text.replace(/[^-A-Za-z0-9_.]/g, "-"), text, 63, /[^A-Za-z0-9]+/);
}

function shorten(cleaned: string, original: string, max: number, edge: RegExp): string {
  const hash = createHash("sha256").update(original).digest("hex").slice(0, HASH_LENGTH);
  const head = cleaned
    .replace(new RegExp(`^${edge.source}`), "")
    .slice(0, Math.max(max - HASH_LENGTH - 1, 0))
    .replace(new RegExp(`${edge.source}$`), "");
  // A hex hash starts and ends alphanumeric: the name is valid with or without a head.
  return head ? `${head}-${hash}` : hash;
}
