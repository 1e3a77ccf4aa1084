// A Dataset over a list of records (parsed once, small) whose images load lazily on get/stream.
// Splits are seeded by item id (src/data/split.ts), except for records with a split of their own
// (ownSplit: the dataset's official split); shuffles are seeded.
import { Stream } from '../rng';
import { splitOf } from '../split';
import type { Dataset, Split, StreamOptions, VqaItem } from '../types';

export class ManifestDataset<R extends { id: string }> implements Dataset {
  constructor(
    /** The dataset's name. */
    readonly name: string,
    /** The records, one per item (index i is get(i)); their images load on demand. */
    readonly records: readonly R[],
    private readonly load: (r: R, index: number) => Promise<VqaItem>,
    /** The record's own split, when the dataset has one; the seeded hash split otherwise. */
    private readonly ownSplit?: (r: R, index: number) => Split | undefined,
  ) {}

  get size(): number {
    return this.records.length;
  }

  async get(index: number): Promise<VqaItem> {
    if (!Number.isInteger(index) || index < 0 || index >= this.records.length) {
      throw new RangeError(`Expected index in [0, ${this.records.length}) for ${this.name} but received ${index}`);
    }
    return this.load(this.records[index], index);
  }

  /** Indices of a split, in file order or shuffled. */
  indices(opts: StreamOptions = {}): number[] {
    const seed = opts.seed ?? 0;
    let idx = this.records.map((_, i) => i);
    if (opts.split) idx = idx.filter((i) => (this.ownSplit?.(this.records[i], i) ?? splitOf(this.records[i].id, seed, opts.fractions)) === opts.split);
    if (opts.shuffle) new Stream(seed, 0x5eed).shuffle(idx);
    return idx;
  }

  async *stream(opts: StreamOptions = {}): AsyncIterable<VqaItem> {
    for (const i of this.indices(opts)) yield await this.get(i);
  }
}
