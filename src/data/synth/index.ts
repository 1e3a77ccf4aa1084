// MedVista-Synth-v0 behind the Dataset interface: an endless, seeded stream of generated items.
import { Stream } from '../rng';
import { splitOf } from '../split';
import type { Dataset, StreamOptions, VqaItem } from '../types';
import { generateItem, resolveSynthOptions, synthId, type SynthOptions } from './generator';
import { generatorPool } from './pool';

export { generateItem, generateQuestion, resolveSynthOptions, synthId } from './generator';
export type { SynthOptions, SynthMeta } from './generator';
export { LOOKS, MODALITIES, CONFUSABLE } from './looks';
export type { Modality, Look } from './looks';
export { TEXTURES, GRADES, MODALITY_FAMILIES } from './questions';
export { GeneratorPool, generatorPool } from './pool';

export class SynthDataset implements Dataset {
  /** The generator's name. */
  readonly name = 'MedVista-Synth-v0';
  readonly size = Infinity;
  /** The generator options as given (defaults apply to the fields left out). */
  readonly options: SynthOptions;
  /** Worker threads that generate items (0: on the calling thread). */
  readonly workers: number;
  /**
   * `workers` > 0 generates items on that many worker threads (shared process-wide), off the
   * event loop; 0 (default) generates on the calling thread. Items are identical either way.
   */
  constructor(options: SynthOptions = {}, opts: { workers?: number } = {}) {
    resolveSynthOptions(options); // validate up front
    this.options = { ...options };
    this.workers = opts.workers ?? 0;
    if (!Number.isInteger(this.workers) || this.workers < 0) throw new RangeError(`Expected non-negative integer workers but received ${this.workers}`);
  }
  async get(index: number): Promise<VqaItem> {
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`Expected non-negative integer index but received ${index}`);
    return this.workers > 0 ? generatorPool(this.workers).generate(this.options, index) : generateItem(this.options, index);
  }
  /** Endless stream; with a split, items whose (seed, id) hash falls in another split are skipped. */
  async *stream(opts: StreamOptions = {}): AsyncIterable<VqaItem> {
    const order = opts.shuffle ? new Stream(opts.seed ?? 0, 0x5eed) : undefined;
    for (let k = 0; ; k++) {
      const index = order ? order.u32() : k;
      // The id is known before generating, so skipped items cost nothing.
      if (opts.split && splitOf(synthId(this.options.seed ?? 0, index), opts.seed ?? 0, opts.fractions) !== opts.split) continue;
      yield generateItem(this.options, index);
    }
  }
}
