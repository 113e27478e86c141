/**
 * Reads the build server's output as it streams (BuildKit's plain progress, and `docker
 * push`'s lines for the Docker builders) into counts: the step running now and its last
 * output line, the Dockerfile steps and how many came from the cache, when the push began
 * and how many layers it handled. Pure: lines in, counts out.
 *
 * BuildKit's plain format: "#N [stage x/y] INSTRUCTION" starts step N, "#N 1.23 text"
 * is its output, "#N CACHED" / "#N DONE 0.1s" / "#N ERROR: ..." end it; the export step
 * ("#N exporting to image") holds "#N pushing layers" when it pushes.
 */

export class BuildProgress {
  /** Dockerfile steps by id ("[2/3] RUN npm ci"); internal ones ("[internal] ...") are not counted. */
  private readonly names = new Map<string, string>();
  private readonly cachedSteps = new Set<string>();
  private readonly layerIds = new Set<string>();
  private pushStep: string | undefined;
  /** The step shown as running, and its latest output line. */
  step: string | undefined;
  output: string | undefined;
  private currentId: string | undefined;
  /** The push began (BuildKit's "pushing layers", or a `docker push` line). */
  pushing = false;

  get steps(): number {
    return this.names.size;
  }

  get cached(): number {
    return this.cachedSteps.size;
  }

  get layers(): number {
    return this.layerIds.size;
  }

  /** Takes one line; true when what a reader sees (step, output, counts) changed. */
  line(l: string): boolean {
    const m = /^#(\d+) (.*)$/.exec(l);
    if (!m) return this.dockerPush(l);
    const [, id, rest] = m as unknown as [string, string, string];
    if (/^\[[^\]]*\d+\/\d+\]/.test(rest) && !this.names.has(id)) {
      this.names.set(id, rest);
      this.show(id, rest);
      return true;
    }
    if (rest === "CACHED") {
      if (this.names.has(id)) this.cachedSteps.add(id);
      return this.names.has(id);
    }
    if (/^(exporting to image|exporting to oci image format)/.test(rest)) {
      this.show(id, rest);
      return true;
    }
    if (/^pushing (layers|manifest)/.test(rest)) {
      this.pushStep = id;
      const changed = !this.pushing;
      this.pushing = true;
      return changed;
    }
    if (id === this.pushStep) {
      // A layer's upload status: "#12 sha256:0a1b... 12.3MB / 45.6MB 0.4s".
      const layer = /^(sha256:[0-9a-f]{12,})\b/.exec(rest);
      if (layer && !this.layerIds.has(layer[1] as string)) {
        this.layerIds.add(layer[1] as string);
        return true;
      }
      return false;
    }
    if (/^(DONE|ERROR|CANCELED)\b/.test(rest)) return false;
    const out = /^\d+\.\d+ (.*)$/.exec(rest);
    if (out && id === this.currentId && (out[1] as string).trim()) {
      this.output = (out[1] as string).trim();
      return true;
    }
    return false;
  }

  /** `docker push`: "0a1b2c3d4e5f: Pushed", "...: Layer already exists", "...: Mounted from x". */
  private dockerPush(l: string): boolean {
    const m = /^([0-9a-f]{12}): (Pushed|Layer already exists|Mounted from)/.exec(l);
    if (!m) {
      if (/^The push refers to repository/.test(l)) {
        const changed = !this.pushing;
        this.pushing = true;
        return changed;
      }
      return false;
    }
    this.pushing = true;
    if (this.layerIds.has(m[1] as string)) return false;
    this.layerIds.add(m[1] as string);
    return true;
  }

  private show(id: string, name: string) {
    this.currentId = id;
    this.step = name;
    this.output = undefined;
  }
}
