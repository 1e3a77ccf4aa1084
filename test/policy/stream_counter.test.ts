// SampleKey.counter: a conversation prefilled whole (what a stateless server does per request) resumes
// its SPEC §7 stream where the turn-by-turn session left it, so both sample the same tokens.
import { NativePolicy } from '../../src/policy';
import { encode, IMAGE_ID } from '../../src/tokenizer';
import { expectRejects } from '../helpers/errors';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, randomView, randomizeWeights } from './common';

describe('stream counter (SampleKey.counter)', () => {
  const policy = NativePolicy.create({ ...TEST_CONFIG, maxSeq: 200 }, { seed: 3 });
  randomizeWeights(policy, 17);
  afterAll(() => policy.dispose());
  const rng = new Rng(5);
  const size = policy.config.imageSize;
  const prompt = { tokens: [...encode('<|bos|>sys\nuser: '), IMAGE_ID, ...encode('\nwhich?\nassistant: ')], images: [randomView(rng, size)] };
  const toolView = randomView(rng, size);
  const toolResponse = { tokens: [...encode('\n<tool_response>zoomed'), IMAGE_ID, ...encode('</tool_response>\nassistant: ')], images: [toolView] };
  const key = { seed: 9, step: 2, promptIndex: 1, sampleIndex: 3 };

  /** Turn 2 of one session going turn by turn, and the context it saw before sampling it. */
  async function twoTurns(temperature: number): Promise<{ turn1: number[]; turn2: number[]; context: number[] }> {
    const s = policy.createSession();
    const opts = { maxNewTokens: 10, temperature, stopTokens: [] as number[] };
    const [id] = await s.add([{ ...prompt, key }]);
    const t1 = await s.generate([id], opts);
    await s.append([{ id, input: toolResponse }]);
    const context = Array.from(s.tokens(id));
    const t2 = await s.generate([id], opts);
    s.dispose();
    return { turn1: Array.from(t1[0].tokens), turn2: Array.from(t2[0].tokens), context };
  }

  async function fresh(context: number[], counter: number, temperature: number): Promise<number[]> {
    const s = policy.createSession();
    const [id] = await s.add([{ tokens: context, images: [...prompt.images, toolView], key: { ...key, counter } }]);
    const out = await s.generate([id], { maxNewTokens: 10, temperature, stopTokens: [] });
    s.dispose();
    return Array.from(out[0].tokens);
  }

  test.each([1, 0])('turn 2 of a session = a fresh session prefilling the whole context with counter = turn-1 tokens (temperature %d)', async (temperature) => {
    const { turn1, turn2, context } = await twoTurns(temperature);
    expect(turn1.length).toBe(10);
    expect(await fresh(context, turn1.length, temperature)).toEqual(turn2);
  });

  test('the counter matters when sampling: counter 0 restarts the stream and samples otherwise', async () => {
    const { turn2, context } = await twoTurns(1);
    expect(await fresh(context, 0, 1)).not.toEqual(turn2);
  });

  test('fork children go on from the parent counter: = add with the child key and the same counter', async () => {
    const opts = { maxNewTokens: 12, temperature: 1, stopTokens: [] as number[] };
    const s = policy.createSession();
    const [parent] = await s.add([{ ...prompt, key: { ...key, counter: 7 } }]);
    const [child] = await s.fork(parent, 1, [{ sampleIndex: 4 }]);
    const [direct] = await s.add([{ ...prompt, key: { ...key, sampleIndex: 4, counter: 7 } }]);
    const [zero] = await s.add([{ ...prompt, key: { ...key, sampleIndex: 4 } }]);
    const [a, b, c] = await s.generate([child, direct, zero], opts);
    expect(Array.from(a.tokens)).toEqual(Array.from(b.tokens));
    expect(Array.from(a.tokens)).not.toEqual(Array.from(c.tokens));
    s.dispose();
  });

  test('a bad counter is a RangeError naming the field', async () => {
    const s = policy.createSession();
    await expectRejects(s.add([{ ...prompt, key: { counter: -1 } }]), 'RangeError', /seqs\[0\]\.key\.counter/);
    await expectRejects(s.add([{ ...prompt, key: { counter: 1.5 } }]), 'RangeError', /seqs\[0\]\.key\.counter/);
    s.dispose();
  });
});
