// Small LRU caches an env (or all sub-envs of a VectorEnv) share: generated items by index and
// rendered views by (item id, window, region, operation). GRPO resets the same prompt G times and
// policies zoom the same cells again and again, so most renders are repeats.
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  hits = 0;
  misses = 0;
  constructor(readonly capacity: number) {}
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.map.delete(key); // re-insert: most recent last
    this.map.set(key, v);
    return v;
  }
  set(key: K, v: V): void {
    if (this.capacity <= 0) return;
    this.map.delete(key);
    this.map.set(key, v);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }
  delete(key: K): void {
    this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
}

import type { VqaItem } from '../data/types';
import type { ViewImage } from '../tools/image';

/** The caches one env, or all sub-envs of a VectorEnv, share. */
export interface EnvCaches {
  items: Lru<number, Promise<VqaItem>>;
  views: Lru<string, ViewImage>;
}

export function makeCaches(itemCacheSize: number, viewCacheSize: number): EnvCaches {
  return { items: new Lru(itemCacheSize), views: new Lru(viewCacheSize) };
}
