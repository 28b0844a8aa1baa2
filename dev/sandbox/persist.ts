/**
 * The optional state file behind `npm start`: loaded once at start, saved after changes (debounced)
 * with an atomic write (temp file in the same directory, then rename), so a crash never leaves a
 * half-written file and data survives restarts.
 */
import { dirname } from "node:path";
import { z } from "zod";
import type { SandboxData, SandboxState } from "./state.ts";

const fileSchema = z.object({
  version: z.literal(1),
  accounts: z.record(
    z.string(),
    z.looseObject({ email: z.string(), calendars: z.record(z.string(), z.unknown()) }),
  ),
  grants: z.record(z.string(), z.looseObject({ id: z.string(), email: z.string() })),
  accessTokens: z.record(z.string(), z.looseObject({ grantId: z.string(), expiresAt: z.number() })),
  changeSeq: z.number().int().min(0),
  etagClock: z.number().min(0),
  microsoft: z.object({
    accounts: z.record(
      z.string(),
      z.looseObject({ email: z.string(), calendars: z.record(z.string(), z.unknown()) }),
    ),
    grants: z.record(z.string(), z.looseObject({ id: z.string(), email: z.string() })),
    accessTokens: z.record(z.string(), z.looseObject({ grantId: z.string(), expiresAt: z.number() })),
  }).optional(),
});

/**
 * Read a state file. Missing file -> undefined (start empty). A file that is not a sandbox state
 * throws an Error naming the path, rather than silently discarding someone's data.
 */
export async function loadStateFile(path: string): Promise<SandboxData | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`sandbox state file ${path} is not valid JSON; move it away to start fresh`);
  }
  const result = fileSchema.safeParse(parsed);
  if (!result.success) {
    throw new Error(
      `sandbox state file ${path} does not look like sandbox state (${result.error.issues[0]?.message})`,
    );
  }
  return parsed as SandboxData;
}

/** Saves `state.data` to `path` at most once per `debounceMs` after changes. */
export class StateFileWriter {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(
    private readonly path: string,
    private readonly state: SandboxState,
    private readonly debounceMs = 100,
  ) {}

  /** Mark the state changed; a save follows within `debounceMs`. */
  schedule(): void {
    this.dirty = true;
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.saving = this.saving.then(() => this.write()).catch((e) => {
        console.error(`sandbox: could not save state to ${this.path}: ${(e as Error).message}`);
      });
    }, this.debounceMs);
  }

  /** Write now if anything changed, and wait for writes in flight. */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.saving = this.saving.then(() => this.write());
    await this.saving;
  }

  private async write(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    await Deno.mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      await Deno.writeTextFile(tmp, JSON.stringify(this.state.data));
      await Deno.rename(tmp, this.path);
    } catch (e) {
      this.dirty = true;
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }
}
