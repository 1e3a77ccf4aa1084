// A pool of worker threads running the generator, so that image synthesis (pure JS, ~5-15 ms an
// item) runs off the event loop and on every core. Items are the same as on the main thread:
// generation is a pure function of (options, index). Workers are unref'd: they never keep the
// process alive while idle.
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { VqaItem } from '../types';
import type { SynthOptions } from './generator';

type Pending = { resolve: (v: VqaItem) => void; reject: (e: Error) => void };

export class GeneratorPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(
    /** Worker threads in the pool (a positive integer). */
    readonly size: number,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`Expected positive integer pool size but received ${size}`);
    for (let k = 0; k < size; k++) this.spawn(k);
  }

  private spawn(k: number): void {
    // From TypeScript sources (tsx, jest) the worker compiles its own file through tsx.
    const ts = __filename.endsWith('.ts');
    const file = path.join(__dirname, ts ? 'worker.ts' : 'worker.js');
    const w = ts
      ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { eval: true })
      : new Worker(file);
    w.on('message', (m: { id: number; item?: VqaItem; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (--this.load[k] === 0) w.unref();
      if (m.error !== undefined || !m.item) p.reject(new Error(m.error ?? 'generator worker returned nothing'));
      else p.resolve(m.item);
    });
    w.on('error', (err) => {
      // A crashed worker fails its requests; the pool goes on with the others.
      for (const [id, p] of this.pending) {
        p.reject(err);
        this.pending.delete(id);
      }
      this.load.fill(0);
      w.unref();
    });
    // After the listeners: adding a 'message' listener refs the worker again.
    w.unref();
    this.workers[k] = w;
    this.load[k] = 0;
  }

  generate(opts: SynthOptions, index: number): Promise<VqaItem> {
    let k = 0;
    for (let j = 1; j < this.size; j++) if (this.load[j] < this.load[k]) k = j;
    const id = this.nextId++;
    // Ref'd only while it owes an answer, so an idle pool never keeps the process alive.
    if (this.load[k]++ === 0) this.workers[k].ref();
    return new Promise<VqaItem>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[k].postMessage({ id, opts, index });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

const POOLS = new Map<number, GeneratorPool>();

/** The process-wide pool of `size` workers (created on first use, shared by every SynthDataset). */
export function generatorPool(size: number): GeneratorPool {
  let p = POOLS.get(size);
  if (!p) POOLS.set(size, (p = new GeneratorPool(size)));
  return p;
}
