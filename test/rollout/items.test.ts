// Item sources: the generator's disjoint ranges (today's indices exactly), and a dataset's splits —
// own split where given, else the stable hash split; eval on test only, never a train id; GRPO walks
// the train split in reshuffled epochs as a pure function of the step; the demo pool is refused,
// with the counts, when larger than what exists.
import { splitOf } from '../../src/data/split';
import { DatasetItems, GENERATOR_ITEMS, INDEX_BASE, type ItemFacts } from '../../src/rollout';

const facts = (n: number, f: (k: number) => Partial<ItemFacts> = () => ({})): ItemFacts[] =>
  Array.from({ length: n }, (_, k) => ({ id: `item-${k}`, hasBox: k % 2 === 0, modality: k % 3 ? 'ct' : 'xray', ...f(k) }));
const opts = { seed: 7, fractions: [0.6, 0.1, 0.3] as [number, number, number], withoutBox: 'answer' as const };

test('the generator: the index ranges runs have always used', () => {
  expect(GENERATOR_ITEMS.sftPool(3)).toEqual([0, 1, 2]);
  expect(GENERATOR_ITEMS.sftFresh(2, 4)).toEqual([8, 9, 10, 11]);
  expect(GENERATOR_ITEMS.grpoItems(5, 8)).toEqual(Array.from({ length: 8 }, (_, p) => INDEX_BASE.grpo + 40 + p));
  expect(GENERATOR_ITEMS.evalItems(2)).toEqual([INDEX_BASE.eval, INDEX_BASE.eval + 1]);
});

test('a dataset without splits: the hash split by id; eval on test only', () => {
  const f = facts(200);
  const src = new DatasetItems('ds', f, opts);
  const split = (i: number): string => splitOf(f[i].id, 7, opts.fractions);
  const test = src.evalItems(1000);
  expect(test.length).toBe(src.summary.test);
  expect(src.summary).toMatchObject({ splitFrom: 'hash', train: f.filter((_, i) => split(i) === 'train').length });
  for (const i of test) expect(split(i)).toBe('test');
  for (let step = 0; step < 30; step++) for (const i of src.grpoItems(step, 8)) expect(split(i)).toBe('train');
  for (const i of src.sftPool(20)) expect(split(i)).toBe('train');
  expect(src.evalItems(5)).toEqual(test.slice(0, 5)); // a prefix of one seeded order
});

test("a dataset's own split wins; mixed datasets fall back to the hash split per item", () => {
  const own = new DatasetItems('ds', facts(40, (k) => ({ split: k < 30 ? 'train' : 'test' })), opts);
  expect(own.summary).toMatchObject({ splitFrom: 'dataset', train: 30, test: 10, val: 0 });
  expect(own.evalItems(100).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, k) => 30 + k));
  const mixed = new DatasetItems('ds', facts(40, (k) => (k < 10 ? { split: 'test' } : {})), opts);
  expect(mixed.summary.splitFrom).toBe('mixed');
  expect(mixed.evalItems(100)).toEqual(expect.arrayContaining([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
});

test('GRPO walks the train split in epochs: every item once per epoch, reshuffled, a pure function of the step', () => {
  const src = new DatasetItems('ds', facts(30, (k) => ({ split: k < 12 ? 'train' : 'test' })), opts);
  const walk = Array.from({ length: 6 }, (_, s) => src.grpoItems(s, 4)).flat(); // 24 = 2 epochs of 12
  const e0 = walk.slice(0, 12);
  const e1 = walk.slice(12);
  expect([...e0].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, k) => k));
  expect([...e1].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, k) => k));
  expect(e1).not.toEqual(e0);
  // a fresh source (a resumed run) draws the same items at any step, in any order of calls
  const again = new DatasetItems('ds', facts(30, (k) => ({ split: k < 12 ? 'train' : 'test' })), opts);
  expect(again.grpoItems(5, 4)).toEqual(walk.slice(20, 24));
  expect(again.grpoItems(0, 4)).toEqual(walk.slice(0, 4));
});

test('the demo pool: items with a box, plus answer-only ones unless skipped; too large a pool says how many exist', () => {
  const f = facts(20, (k) => ({ split: k < 16 ? 'train' : 'test' })); // 8 train items with a box
  const answer = new DatasetItems('ds', f, opts);
  expect(answer.summary).toMatchObject({ demoEligible: 16, withBox: 8 });
  expect(new Set(answer.sftPool(16)).size).toBe(16);
  expect(() => answer.sftPool(17)).toThrow(/sft\.demoPool is 17 but ds has 16 train items usable as demonstrations \(8 with a box, 8 answer-only\)/);
  const skip = new DatasetItems('ds', f, { ...opts, withoutBox: 'skip' });
  for (const i of skip.sftPool(8)) expect(f[i].hasBox).toBe(true);
  expect(() => skip.sftPool(9)).toThrow(/has 8 train items usable as demonstrations \(8 with a box\)/);
  for (let s = 0; s < 5; s++) for (const i of skip.sftFresh(s, 3)) expect(f[i].hasBox).toBe(true);
});

test('trainModalities narrow the train items only; an unknown modality or an id in both splits is refused', () => {
  const f = facts(60, (k) => ({ split: k < 40 ? 'train' : 'test' }));
  const src = new DatasetItems('ds', f, { ...opts, trainModalities: ['xray'] });
  for (let s = 0; s < 10; s++) for (const i of src.grpoItems(s, 4)) expect(f[i].modality).toBe('xray');
  expect(src.evalItems(100).some((i) => f[i].modality === 'ct')).toBe(true);
  expect(() => new DatasetItems('ds', f, { ...opts, trainModalities: ['pet'] })).toThrow(/pet not among the modalities of ds \(ct, xray\)/);
  const leak = facts(10, (k) => ({ split: k < 5 ? 'train' : 'test', id: `same-${k % 5}` }));
  expect(() => new DatasetItems('ds', leak, opts)).toThrow(/5 test item ids are also train item ids/);
});
