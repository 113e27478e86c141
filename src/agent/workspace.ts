/**
 * A user's workspace for one project: workspaces/<user>/<project>/ holds two trees,
 * "a" and "b", and a symlink "current" naming the one builds use. A sync brings the
 * other tree up to the new manifest (applying only the difference from what that tree
 * held) and then swaps "current" with one rename, so a build never sees a half-synced
 * tree and an interrupted sync leaves the previous tree untouched. A tree is marked
 * dirty before it is changed; a dirty tree is rebuilt from scratch on the next sync.
 */
import {
  chmodSync,
  constants,
  copyFileSync,
  promises as fs,
  linkSync,
  mkdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import path from "node:path";
import { compareEntryPaths, type Entry, manifestText, parseManifestText } from "../protocol/manifest.js";
import type { BlobStore } from "./blobs.js";
import { InvalidInput } from "./errors.js";

type Slot = "a" | "b";
interface SlotState {
  clean: boolean;
  digest?: string;
}
export interface WorkspaceInfo {
  user: string;
  project: string;
  digest: string;
  files: number;
  bytes: number;
  lastSync: string;
  lastBuild?: LastBuild;
}
/** What the workspace's last successful build was made from. */
export interface LastBuild {
  ref: string;
  digest: string;
  manifest: string;
  settings: Record<string, unknown>;
  time: string;
}
/** A tree's manifest: its digest, entries and canonical text (what the digest hashes). */
export interface HeldManifest {
  digest: string;
  entries: Entry[];
  text: string;
}
export interface Changes {
  added: number;
  changed: number;
  removed: number;
  /** A few of the changed paths, for the user. */
  sample: string[];
}

export class Workspace {
  readonly dir: string;

  constructor(
    root: string,
    readonly user: string,
    readonly project: string,
  ) {
    this.dir = path.join(root, user, project);
  }

  /** The tree builds use; undefined before the first sync. */
  async currentTree(): Promise<string | undefined> {
    const slot = await this.currentSlot();
    return slot && path.join(this.dir, slot);
  }

  /**
   * The path builds give docker as their context (and under which they name the
   * Dockerfile): the symlink "current" itself, never the tree it names. BuildKit keeps
   * one incremental copy of a build context per "shared key", which the docker CLI
   * derives from the context path exactly as given (symlinks unresolved, not even made
   * absolute): one path for both trees keeps each build's context transfer an update of
   * what the previous build sent, whichever tree that came from, instead of a full
   * transfer on a tree's first build and a cache per tree. The caller holds the
   * workspace lock for the whole build, so "current" cannot be switched under it.
   */
  get buildContext(): string {
    return path.join(this.dir, "current");
  }

  async info(): Promise<WorkspaceInfo | undefined> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.dir, "info.json"), "utf8")) as WorkspaceInfo;
    } catch {
      return undefined;
    }
  }

  private async currentSlot(): Promise<Slot | undefined> {
    try {
      const t = await fs.readlink(path.join(this.dir, "current"));
      return t === "a" || t === "b" ? t : undefined;
    } catch {
      return undefined;
    }
  }

  /** The digest of the manifest the current tree holds, if that tree is clean (no manifest read). */
  async currentDigest(): Promise<string | undefined> {
    const slot = await this.currentSlot();
    if (!slot) return undefined;
    try {
      const state = JSON.parse(
        await fs.readFile(path.join(this.dir, `${slot}.state.json`), "utf8"),
      ) as SlotState;
      return state.clean ? state.digest : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Adds the blobs both trees' manifests name to `into`: a tree's files are hard links to
   * them, so deleting them would free nothing (and the next sync would send them again).
   */
  async referencedBlobs(into: Set<string>): Promise<void> {
    for (const slot of ["a", "b"] as const) {
      let entries: Entry[];
      try {
        ({ entries } = await this.readManifest(slot));
      } catch {
        continue; // no tree there yet
      }
      for (const e of entries) if (e.type === "file" && e.hash) into.add(e.hash);
    }
  }

  /** Records a use of the workspace that changed nothing in it (a no-op sync): info.json's mtime. */
  async touch(): Promise<void> {
    const now = new Date();
    await fs.utimes(path.join(this.dir, "info.json"), now, now).catch(() => {});
  }

  /** When it was last used: info.json's mtime (written by each sync and build, touched by no-op syncs). */
  async lastUsed(): Promise<Date | undefined> {
    try {
      return (await fs.stat(path.join(this.dir, "info.json"))).mtime;
    } catch {
      return undefined;
    }
  }

  /**
   * A slot's manifest file: its canonical text (`<slot>.manifest`), or the JSON list of
   * entries (`<slot>.manifest.json`) of a tree an older agent wrote.
   */
  private async readManifest(slot: Slot): Promise<{ entries: Entry[]; text: string }> {
    try {
      const text = await fs.readFile(path.join(this.dir, `${slot}.manifest`), "utf8");
      return { entries: parseManifestText(text), text };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const entries = JSON.parse(
      await fs.readFile(path.join(this.dir, `${slot}.manifest.json`), "utf8"),
    ) as Entry[];
    return { entries, text: manifestText(entries) };
  }

  /** The manifest the current tree holds, if that tree is clean. */
  async currentManifest(): Promise<HeldManifest | undefined> {
    const slot = await this.currentSlot();
    return slot ? this.readSlot(slot) : undefined;
  }

  private async readSlot(slot: Slot): Promise<HeldManifest | undefined> {
    try {
      const state = JSON.parse(
        await fs.readFile(path.join(this.dir, `${slot}.state.json`), "utf8"),
      ) as SlotState;
      if (!state.clean || !state.digest) return undefined;
      const key = path.join(this.dir, slot);
      const known = recentManifests.get(key);
      if (known?.digest === state.digest) return known;
      return remember(key, { digest: state.digest, ...(await this.readManifest(slot)) });
    } catch {
      return undefined;
    }
  }

  private async writeSlotState(slot: Slot, state: SlotState) {
    const file = path.join(this.dir, `${slot}.state.json`);
    await fs.writeFile(`${file}.tmp`, JSON.stringify(state));
    await fs.rename(`${file}.tmp`, file);
  }

  /**
   * Materializes `entries` (validated, sorted; `text` their canonical text) into the idle
   * tree from the blob store and makes it current. Returns what changed relative to the
   * previous current tree.
   */
  async update(
    digest: string,
    entries: Entry[],
    blobs: BlobStore,
    text: string = manifestText(entries),
  ): Promise<Changes> {
    await fs.mkdir(this.dir, { recursive: true });
    const current = await this.currentSlot();
    const target: Slot = current === "a" ? "b" : "a";
    const before = current ? await this.readSlot(current) : undefined;
    const held = await this.readSlot(target);
    const tree = path.join(this.dir, target);

    await this.writeSlotState(target, { clean: false });
    if (!held) {
      await fs.rm(tree, { recursive: true, force: true });
      await fs.mkdir(tree, { mode: 0o755 });
    }
    await applyDiff(tree, held?.entries ?? [], entries, blobs);

    const manifestFile = path.join(this.dir, `${target}.manifest`);
    await fs.writeFile(`${manifestFile}.tmp`, text);
    await fs.rename(`${manifestFile}.tmp`, manifestFile);
    await fs.rm(`${manifestFile}.json`, { force: true });
    await this.writeSlotState(target, { clean: true, digest });
    remember(tree, { digest, entries, text });

    // The switch: one atomic rename of a fresh symlink over "current".
    const link = path.join(this.dir, "current");
    await fs.rm(`${link}.tmp`, { force: true });
    await fs.symlink(target, `${link}.tmp`);
    await fs.rename(`${link}.tmp`, link);

    const files = entries.filter((e) => e.type === "file");
    const previous = await this.info();
    const info: WorkspaceInfo = {
      ...(previous?.lastBuild ? { lastBuild: previous.lastBuild } : {}),
      user: this.user,
      project: this.project,
      digest,
      files: files.length,
      bytes: files.reduce((n, e) => n + e.size, 0),
      lastSync: new Date().toISOString(),
    };
    await this.writeInfo(info);
    return diffSummary(before?.entries ?? [], entries);
  }

  async recordBuild(build: LastBuild): Promise<void> {
    const info = await this.info();
    if (info) await this.writeInfo({ ...info, lastBuild: build });
  }

  private async writeInfo(info: WorkspaceInfo) {
    const file = path.join(this.dir, "info.json");
    await fs.writeFile(`${file}.tmp`, JSON.stringify(info));
    await fs.rename(`${file}.tmp`, file);
  }
}

/**
 * The manifests of the slots synced or read most recently, so that the next sync of an
 * active workspace does not parse two manifest files again (about 10 ms each for 10k
 * entries). Valid only with the digest in the slot's state file, which is always read.
 * Treated as read-only by everyone.
 */
const recentManifests = new Map<string, HeldManifest>();
const RECENT_MANIFESTS = 8;

function remember(key: string, m: HeldManifest) {
  recentManifests.delete(key);
  recentManifests.set(key, m);
  for (const old of recentManifests.keys()) {
    if (recentManifests.size <= RECENT_MANIFESTS) break;
    recentManifests.delete(old);
  }
  return m;
}

function same(a: Entry, b: Entry): boolean {
  return (
    a.type === b.type && a.mode === b.mode && a.hash === b.hash && a.target === b.target && a.size === b.size
  );
}

/**
 * Brings `tree` from holding `from` to holding `to`. Both lists sorted by path.
 * Synchronous filesystem calls: each is a metadata operation of microseconds, far less
 * than a trip through libuv's thread pool; the loop yields to other sessions every
 * YIELD_EVERY operations.
 */
export async function applyDiff(tree: string, from: Entry[], to: Entry[], blobs: BlobStore): Promise<void> {
  // Both lists are sorted by path: each step walks them side by side (no maps of every path).
  const removed = new Set<string>();
  const abs = (p: string) => path.join(tree, p);
  let ops = 0;
  const tick = async () => {
    if (++ops % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
  };

  // 1. Remove what goes away or changes type, deepest first. Anything inside a
  //    removed directory goes with it.
  for (let i = from.length - 1, j = to.length - 1; i >= 0; i--) {
    const old = from[i] as Entry;
    while (j >= 0 && (to[j] as Entry).path > old.path) j--;
    const next = j >= 0 && (to[j] as Entry).path === old.path ? to[j] : undefined;
    if (next && next.type === old.type && (old.type !== "symlink" || next.target === old.target)) continue;
    rmSync(abs(old.path), { recursive: true, force: true });
    removed.add(old.path);
    await tick();
  }
  // 2. Create and update in path order, so parents come before children. Directory
  //    modes are applied last, so a read-only directory can still be filled.
  const dirs: Entry[] = [];
  let i = 0;
  for (const e of to) {
    while (i < from.length && (from[i] as Entry).path < e.path) i++;
    const at = from[i];
    const old = at && at.path === e.path && !removed.has(e.path) ? at : undefined;
    if (old && same(old, e)) continue;
    const dest = abs(e.path);
    if (e.type === "dir") {
      if (!old) mkdirSync(dest, { mode: 0o755 });
      dirs.push(e);
    } else if (e.type === "symlink") {
      if (!old) symlinkSync(e.target as string, dest);
    } else {
      placeFile(blobs, e, dest, Boolean(old));
    }
    await tick();
  }
  for (let i = dirs.length - 1; i >= 0; i--) {
    const d = dirs[i] as Entry;
    chmodSync(abs(d.path), d.mode & 0o777);
  }
}

const YIELD_EVERY = 2000;

function placeFile(blobs: BlobStore, e: Entry, dest: string, replacing: boolean): void {
  const src = blobs.path(e.hash as string);
  const st = statSync(src, { throwIfNoEntry: false });
  if (!st) throw new Error(`blob ${e.hash} for ${e.path} is missing from the store`);
  // A stored blob was checked against its hash as it arrived: when the sizes differ, the
  // manifest is wrong about this file's size.
  if (st.size !== e.size)
    throw new InvalidInput(
      `${e.path}: size ${e.size} in the manifest, but content ${e.hash} is ${st.size} bytes`,
    );
  // Written in place: this tree is not the current one, so nobody reads it until
  // the switch. Files with the store's mode (0644, most of them) are hard links to
  // their blob: one metadata operation and no data copied. Workspaces are read-only
  // by contract (only this agent writes them; builds only read), so the store stays
  // intact. Other modes need a copy of their own.
  if (replacing) rmSync(dest, { force: true });
  if ((e.mode & 0o777) === 0o644) linkSync(src, dest);
  else {
    copyFileSync(src, dest, constants.COPYFILE_FICLONE);
    chmodSync(dest, e.mode & 0o777);
  }
}

function diffSummary(from: Entry[], to: Entry[]): Changes {
  // Both are sorted by path (validated manifests): one merge, no maps of every path.
  const c: Changes = { added: 0, changed: 0, removed: 0, sample: [] };
  const gone: string[] = [];
  const note = (s: string) => {
    if (c.sample.length < 10) c.sample.push(s);
  };
  let i = 0;
  let j = 0;
  while (i < from.length || j < to.length) {
    const a = from[i];
    const b = to[j];
    const order = !a ? 1 : !b ? -1 : compareEntryPaths(a, b);
    if (order < 0) {
      const old = a as Entry;
      if (old.type !== "dir") {
        c.removed++;
        if (gone.length < 10) gone.push(`- ${old.path}`);
      }
      i++;
    } else if (order > 0) {
      const e = b as Entry;
      if (e.type !== "dir") {
        c.added++;
        note(`+ ${e.path}`);
      }
      j++;
    } else {
      const e = b as Entry;
      if (e.type !== "dir" && !same(a as Entry, e)) {
        c.changed++;
        note(`~ ${e.path}`);
      }
      i++;
      j++;
    }
  }
  // What went is listed after what came or changed, as far as ten lines go.
  for (const g of gone) note(g);
  return c;
}

/**
 * One lock per workspace, held by the agent (the only process that changes
 * workspaces), so two syncs of the same workspace never interleave.
 */
export class WorkspaceLocks {
  private readonly held = new Map<string, { holder: string; since: number; waiters: (() => void)[] }>();

  /** The lock if nobody holds it (garbage collection never waits for, or deletes, a workspace in use). */
  tryAcquire(key: string, holder: string): (() => void) | undefined {
    return this.held.has(key) ? undefined : this.take(key, holder);
  }

  /** Who holds `key`'s lock, if anyone. */
  holder(key: string): string | undefined {
    return this.held.get(key)?.holder;
  }

  /** Resolves with a release function once the lock is ours; onWait is told who holds it. */
  async acquire(
    key: string,
    holder: string,
    onWait?: (holder: string, since: number) => void,
  ): Promise<() => void> {
    for (;;) {
      const cur = this.held.get(key);
      if (!cur) break;
      onWait?.(cur.holder, cur.since);
      await new Promise<void>((resolve) => cur.waiters.push(resolve));
    }
    return this.take(key, holder);
  }

  /** Holds a free lock; the release function (idempotent) wakes whoever waits. */
  private take(key: string, holder: string): () => void {
    const entry = { holder, since: Date.now(), waiters: [] as (() => void)[] };
    this.held.set(key, entry);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held.delete(key);
      for (const w of entry.waiters) w();
    };
  }
}
