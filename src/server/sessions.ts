// The session table: one MedGymEnv per session (an HTTP episode_id or a WebSocket), a cap on how
// many live at once, idle eviction, and one request at a time per session (MedGymEnv refuses
// overlapping calls; here that is the client's 409, not the server's 500).
import { randomUUID } from 'node:crypto';
import type { Dataset } from '../data/types';
import { makeCaches, type EnvCaches } from '../env/cache';
import type { MedGymEnv } from '../env/env';
import { envSpec, listEnvs, make } from '../env/registry';
import type { MedGymOptions, ResetOptions } from '../env/types';
import { DATASET_ENV_ID } from '../train/config';
import { didYouMean } from '../util/did_you_mean';
import { EnvServerError } from './errors';
import type { ServerMetrics } from './metrics';
import { BlobStore, encodeReset, encodeStep, type ImagesMode, type WireStep } from './observation';

export type SessionKind = 'http' | 'ws';

export interface Session {
  readonly id: string;
  readonly kind: SessionKind;
  readonly envId: string;
  /** The declared dataset whose items the env serves (a reset's "dataset"); undefined: the env id's own items. */
  readonly dataset?: string;
  readonly env: MedGymEnv;
  /** Steps in the current episode. */
  stepCount: number;
  /** Episodes started (resets). */
  episodes: number;
  done: boolean;
  busy: boolean;
  /** How this session's views travel (reset options.images; default the server's). */
  images: ImagesMode;
  /** Called when the session is evicted for idleness or closed by the server (the socket closes). */
  onEnd?: (reason: 'idle' | 'shutdown') => void;
  timer: NodeJS.Timeout;
}

export interface SessionTableOptions {
  maxSessions: number;
  idleTimeoutMs: number;
  defaultEnv: string;
  envOptions: MedGymOptions;
  /** Counts resets, steps and idle evictions when given. */
  metrics?: ServerMetrics;
  /** Makes the id of a session created without one (default randomUUID; workers: ids that name their owner, src/server/affinity.ts). */
  newId?: () => string;
  /** Default images mode of new sessions. Default inline. */
  images?: ImagesMode;
  /** Recent view PNGs (GET /blobs); a private one of 256 when not given. */
  blobs?: BlobStore;
  /** Declared datasets by name, opened (read-only, shared by sessions); filled before requests come in. */
  datasets?: ReadonlyMap<string, Dataset>;
}

/** What a reset names: an env id, a declared dataset name, both, or neither (the server's default). */
export interface TaskChoice {
  env?: string | null;
  dataset?: string | null;
}

/** The env id served for a dataset named without an env id (as `medgym train --dataset`). */
const DATASET_ENV = DATASET_ENV_ID;

export interface SessionState {
  episode_id: string;
  env: string;
  step_count: number;
  done: boolean;
  episodes: number;
  dataset?: string;
}

export class SessionTable {
  private readonly sessions = new Map<string, Session>();
  // Per env id: sessions draw the same items and zoom the same cells, so they share renders (as makeVec's sub-envs).
  private readonly caches = new Map<string, EnvCaches>();
  /** The PNGs of views sent lately, by pixel sha256 (GET /blobs/<sha256>). */
  readonly blobs: BlobStore;

  constructor(private readonly opts: SessionTableOptions) {
    this.blobs = opts.blobs ?? new BlobStore(256);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session on env `task.env` (default the server's; MedGym-Dataset-v0 with a dataset) serving `task.dataset`'s items when named. Throws 400 on an unknown env id or dataset name, 503 when full. */
  create(kind: SessionKind, task: TaskChoice | null | undefined, id?: string | null): Session {
    const dataset = task?.dataset ?? undefined;
    const env = task?.env ?? (dataset !== undefined ? DATASET_ENV : this.opts.defaultEnv);
    checkEnvId(env);
    const data = dataset !== undefined ? this.datasetOf(dataset) : undefined;
    if (!data && envSpec(env).requiresDataset) {
      const names = this.datasetNames();
      throw new EnvServerError(400, 'VALIDATION_ERROR', `env: ${env} serves a dataset: name one in "dataset" (${names.length ? `declared: ${names.join(', ')}` : 'this server declares none: medgym serve-env --dataset NAME=PATH'})`);
    }
    if (this.sessions.size >= this.opts.maxSessions) {
      throw new EnvServerError(503, 'CAPACITY_REACHED', `all ${this.opts.maxSessions} sessions are in use: close one (POST /close) or retry later`);
    }
    const key = id ?? (this.opts.newId ?? randomUUID)();
    if (this.sessions.has(key)) throw new EnvServerError(409, 'SESSION_BUSY', `episode_id ${JSON.stringify(key)} is already in use`);
    // Caches are keyed by item index: one per (env id, dataset), never shared across datasets.
    const cacheKey = dataset !== undefined ? `${env}\u0000${dataset}` : env;
    let caches = this.caches.get(cacheKey);
    if (!caches) {
      caches = makeCaches(this.opts.envOptions.itemCacheSize ?? 256, this.opts.envOptions.viewCacheSize ?? 4096);
      this.caches.set(cacheKey, caches);
    }
    const envOptions = data ? { ...this.opts.envOptions, dataset: data } : this.opts.envOptions;
    const timer = setTimeout(() => this.expire(key), this.opts.idleTimeoutMs);
    timer.unref(); // an idle session must not keep the process alive
    const s: Session = { id: key, kind, envId: env, ...(dataset !== undefined ? { dataset } : {}), env: make(env, envOptions, caches), stepCount: 0, episodes: 0, done: true, busy: false, images: this.opts.images ?? 'inline', timer };
    this.sessions.set(key, s);
    return s;
  }

  /** The session `id` of this kind (an HTTP client cannot drive a WebSocket's env). 404 otherwise. */
  get(id: string, kind: SessionKind): Session {
    const s = this.sessions.get(id);
    if (!s || s.kind !== kind) {
      throw new EnvServerError(404, 'NOT_FOUND', `episode_id ${JSON.stringify(id)}: no such session (never created, closed, or evicted after ${this.opts.idleTimeoutMs} ms idle)`);
    }
    return s;
  }

  has(id: string): boolean {
    return this.sessions.has(id);
  }

  /** The task a reset naming `task` asks of session `s`, or undefined when it keeps its env (names none, or the same). */
  switchFor(s: Session, task: TaskChoice): TaskChoice | undefined {
    const env = task.env ?? undefined;
    const dataset = task.dataset ?? undefined;
    if (env === undefined && dataset === undefined) return undefined;
    if ((env === undefined || env === s.envId) && (dataset === undefined || dataset === s.dataset)) return undefined;
    // Naming only a dataset keeps a dataset env; naming only an env id leaves the dataset behind.
    const nextEnv = env ?? (s.dataset !== undefined ? s.envId : undefined);
    return { env: nextEnv, dataset: env !== undefined && dataset === undefined ? undefined : dataset };
  }

  /** The same session id on another env or dataset (a reset that names a different one). */
  switchEnv(s: Session, task: TaskChoice): Session {
    if (s.busy) throw new EnvServerError(409, 'SESSION_BUSY', `episode_id ${JSON.stringify(s.id)} is still running a reset or step: wait for its answer`);
    if (task.env) checkEnvId(task.env);
    if (task.dataset) this.datasetOf(task.dataset);
    this.delete(s.id);
    const next = this.create(s.kind, task, s.id);
    next.onEnd = s.onEnd;
    next.images = s.images;
    return next;
  }

  async reset(s: Session, args: { seed?: number | null; options?: (ResetOptions & { images?: ImagesMode }) | null }): Promise<WireStep & { episode_id: string }> {
    return this.exclusive(s, async () => {
      const { images, ...options } = args.options ?? {};
      let r: Awaited<ReturnType<typeof s.env.reset>>;
      try {
        r = await s.env.reset({ seed: args.seed ?? undefined, options: args.options ? options : undefined });
      } catch (err) {
        // The env checks the client's options (an index past the items, say): a 400 naming them, not a 500.
        if (err instanceof RangeError && args.options) throw new EnvServerError(400, 'VALIDATION_ERROR', `options: ${err.message}`);
        throw err;
      }
      if (images) s.images = images;
      s.stepCount = 0;
      s.episodes++;
      s.done = false;
      const wire = await encodeReset(r, s.id, { blobs: this.blobs, images: s.images });
      if (this.opts.metrics) this.opts.metrics.resets++;
      return wire;
    });
  }

  /** One step; `action` is the assistant segment as text or as token ids (validated by the caller). */
  async step(s: Session, action: string | number[], requestId?: string | null): Promise<WireStep> {
    return this.exclusive(s, async () => {
      if (s.episodes === 0) throw new EnvServerError(409, 'NO_EPISODE', 'step before reset: send a reset first');
      if (s.done) throw new EnvServerError(409, 'EPISODE_DONE', 'the episode is over: reset to start the next one');
      const r = await s.env.step(action);
      s.stepCount++;
      s.done = r.terminated || r.truncated;
      const wire = await encodeStep(r, requestId, { blobs: this.blobs, images: s.images });
      if (this.opts.metrics) this.opts.metrics.steps++;
      return wire;
    });
  }

  state(s: Session): SessionState {
    this.touch(s);
    return { episode_id: s.id, env: s.envId, step_count: s.stepCount, done: s.done, episodes: s.episodes, ...(s.dataset !== undefined ? { dataset: s.dataset } : {}) };
  }

  /** Ends a session now (client close, socket gone). Idempotent. */
  delete(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    clearTimeout(s.timer);
    s.env.close();
    this.sessions.delete(id);
  }

  /** Ends every session (server shutdown). */
  closeAll(): void {
    for (const s of [...this.sessions.values()]) {
      this.delete(s.id);
      s.onEnd?.('shutdown');
    }
  }

  /** Declared dataset names (GET /metadata), without their `NAME:split` views. */
  datasetNames(): string[] {
    return [...(this.opts.datasets?.keys() ?? [])].filter((n) => !n.includes(':'));
  }

  /** Items of each declared dataset and of its splits (GET /metadata): {NAME: {all, train, val, test}}. */
  datasetSizes(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [key, d] of this.opts.datasets ?? []) {
      const [name, split = 'all'] = key.split(':');
      (out[name] ??= { all: 0, train: 0, val: 0, test: 0 })[split] = d.size;
    }
    return out;
  }

  /** The declared dataset `name`; 400 naming the declared ones otherwise (a client names a name, never a path). */
  private datasetOf(name: string): Dataset {
    const d = this.opts.datasets?.get(name);
    if (d) return d;
    const names = this.datasetNames();
    throw new EnvServerError(
      400,
      'VALIDATION_ERROR',
      `dataset: unknown dataset ${JSON.stringify(name.slice(0, 100))}${didYouMean(name, names)}; ${names.length ? `declared: ${names.join(', ')}` : 'this server declares none (medgym serve-env --dataset NAME=PATH)'}`,
    );
  }

  private touch(s: Session): void {
    s.timer.refresh();
  }

  private expire(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    if (s.busy) return this.touch(s); // mid-step is not idle
    this.delete(id);
    if (this.opts.metrics) this.opts.metrics.evicted++;
    s.onEnd?.('idle');
  }

  private async exclusive<T>(s: Session, fn: () => Promise<T>): Promise<T> {
    if (s.busy) throw new EnvServerError(409, 'SESSION_BUSY', `episode_id ${JSON.stringify(s.id)} is still running a reset or step: wait for its answer`);
    s.busy = true;
    this.touch(s);
    try {
      return await fn();
    } finally {
      s.busy = false;
      this.touch(s);
    }
  }
}

function checkEnvId(env: string): void {
  const ids = listEnvs().map((e) => e.id);
  if (!ids.includes(env)) throw new EnvServerError(400, 'VALIDATION_ERROR', `env: unknown env id ${JSON.stringify(env)}${didYouMean(env, ids)}; GET /metadata lists them`);
}
