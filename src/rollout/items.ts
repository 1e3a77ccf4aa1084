// Where a run's items come from: the SFT demonstration pool, the GRPO prompt stream and the held-out
// eval set, as item indices of one task source. The endless synthetic generator gives them disjoint
// index ranges; a dataset gives them its splits (its own train/test where it has one, else a stable
// hash split by item id), GRPO walking the train split in seeded epochs. Every list is a pure function
// of (seed, step), so a resumed run draws exactly what the uninterrupted one did.
import { Stream } from '../data/rng';
import { splitOf } from '../data/split';
import type { Split } from '../data/types';

export interface ItemSource {
  readonly kind: 'generator' | 'dataset';
  /** The first `n` demonstration items (the SFT pool); a RangeError saying how many exist when fewer do. */
  sftPool(n: number): number[];
  /** Fresh demonstration items of SFT step `step` (an unlimited pool: demoPool 0). */
  sftFresh(step: number, count: number): number[];
  /** The prompts of GRPO step `step`. */
  grpoItems(step: number, count: number): number[];
  /** The first `n` held-out items (fewer when the test split is smaller: see evalSize). */
  evalItems(n: number): number[];
  /** Items available to evaluation (Infinity for the generator). */
  readonly evalSize: number;
}

/** First item index of each range of the synthetic generator (it is endless and counter-based). */
export const INDEX_BASE = { sft: 0, grpo: 1 << 28, eval: 1 << 30 } as const;

const range = (base: number, n: number): number[] => Array.from({ length: n }, (_, i) => base + i);

/** The synthetic generator: disjoint index ranges, no item drawn twice. */
export const GENERATOR_ITEMS: ItemSource = {
  kind: 'generator',
  sftPool: (n) => range(INDEX_BASE.sft, n),
  sftFresh: (step, count) => range(INDEX_BASE.sft + step * count, count),
  grpoItems: (step, count) => range(INDEX_BASE.grpo + step * count, count),
  evalItems: (n) => range(INDEX_BASE.eval, n),
  evalSize: Infinity,
};

/** What a dataset tells about each item without loading its image (src/data/open.ts ItemInfo). */
export interface ItemFacts {
  id: string;
  split?: Split;
  hasBox: boolean;
  modality: string;
}

export interface DatasetItemsOptions {
  /** Seed of the hash split and of every order. */
  seed: number;
  /** [train, val, test] shares of the hash split, for items without a split of their own. */
  fractions: [number, number, number];
  /** Items without a finding box: answer-only demonstrations ('answer'), or left to GRPO ('skip'). */
  withoutBox: 'answer' | 'skip';
  /** Train on these modalities only (demonstrations and GRPO prompts); eval keeps every modality. */
  trainModalities?: readonly string[];
}

/** How a dataset's items were divided (logged and in the report). */
export interface DatasetSplitSummary {
  /** 'dataset': every item had a split of its own; 'hash': none had; 'mixed': own where given, else hash. */
  splitFrom: 'dataset' | 'hash' | 'mixed';
  train: number;
  val: number;
  test: number;
  /** Train items usable as demonstrations, and how many of them have a box (zoom demonstrations). */
  demoEligible: number;
  withBox: number;
}

/** Item `k` of an endless walk over `items` in epochs, each epoch a fresh seeded shuffle. */
class EpochWalk {
  private epoch = -1;
  private order: number[] = [];
  constructor(
    private readonly items: readonly number[],
    private readonly seed: number,
    private readonly tag: number,
  ) {}

  at(k: number): number {
    const e = Math.floor(k / this.items.length);
    if (e !== this.epoch) {
      this.order = new Stream(this.seed, this.tag, e).shuffle([...this.items]);
      this.epoch = e;
    }
    return this.order[k - e * this.items.length];
  }
}

export class DatasetItems implements ItemSource {
  readonly kind = 'dataset';
  readonly summary: DatasetSplitSummary;
  /** Item indices of each split, in file order (before any modality filter or shuffle). */
  readonly splitIndices: Readonly<Record<Split, readonly number[]>>;
  private readonly test: number[];
  private readonly demos: number[];
  private readonly grpo: EpochWalk;
  private readonly fresh: EpochWalk;

  constructor(
    private readonly name: string,
    facts: readonly ItemFacts[],
    o: DatasetItemsOptions,
  ) {
    const splits: Record<Split, number[]> = { train: [], val: [], test: [] };
    let own = 0;
    facts.forEach((f, i) => {
      if (f.split) own++;
      splits[f.split ?? splitOf(f.id, o.seed, o.fractions)].push(i);
    });
    const seen = new Set<string>();
    for (const i of splits.train) seen.add(facts[i].id);
    // Ids are what a reader would call "the same item": none may be both trained on and evaluated.
    const leaked = splits.test.filter((i) => seen.has(facts[i].id));
    if (leaked.length) throw new RangeError(`${name}: ${leaked.length} test item ids are also train item ids (e.g. ${facts[leaked[0]].id})`);
    const wanted = o.trainModalities ? new Set(o.trainModalities) : undefined;
    const have = new Set(facts.map((f) => f.modality));
    const unknown = [...(wanted ?? [])].filter((m) => !have.has(m));
    if (unknown.length) throw new RangeError(`env.trainModalities: ${unknown.join(', ')} not among the modalities of ${name} (${[...have].sort().join(', ')})`);
    const train = wanted ? splits.train.filter((i) => wanted.has(facts[i].modality)) : splits.train;
    if (train.length === 0) {
      throw new RangeError(`${name}: no train items${wanted ? ` of modality ${[...wanted].join(', ')}` : ''} (splits: ${splits.train.length} train, ${splits.val.length} val, ${splits.test.length} test)`);
    }
    this.splitIndices = splits;
    this.test = new Stream(o.seed, 0xe7a1).shuffle([...splits.test]);
    const eligible = train.filter((i) => facts[i].hasBox || o.withoutBox === 'answer');
    this.demos = new Stream(o.seed, 0xde30).shuffle(eligible);
    this.grpo = new EpochWalk(train, o.seed, 0x6790);
    this.fresh = new EpochWalk(eligible, o.seed, 0x5f4e);
    this.summary = {
      splitFrom: own === facts.length ? 'dataset' : own === 0 ? 'hash' : 'mixed',
      train: train.length,
      val: splits.val.length,
      test: splits.test.length,
      demoEligible: eligible.length,
      withBox: eligible.filter((i) => facts[i].hasBox).length,
    };
  }

  get evalSize(): number {
    return this.test.length;
  }

  sftPool(n: number): number[] {
    if (n > this.demos.length) {
      const s = this.summary;
      throw new RangeError(`sft.demoPool is ${n} but ${this.name} has ${s.demoEligible} train items usable as demonstrations (${s.withBox} with a box${s.demoEligible > s.withBox ? `, ${s.demoEligible - s.withBox} answer-only` : ''}): lower sft.demoPool`);
    }
    return this.demos.slice(0, n);
  }

  sftFresh(step: number, count: number): number[] {
    if (this.demos.length === 0) throw new RangeError(`${this.name} has no train items usable as demonstrations`);
    return Array.from({ length: count }, (_, b) => this.fresh.at(step * count + b));
  }

  grpoItems(step: number, count: number): number[] {
    return Array.from({ length: count }, (_, p) => this.grpo.at(step * count + p));
  }

  evalItems(n: number): number[] {
    return this.test.slice(0, n);
  }
}
