// Checkpoints: SPEC safetensors round trip, bf16, rejection of corrupted / truncated / hostile /
// mismatched files, optimizer state round trip.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { NativePolicy } from '../../src/policy';
import { readSafetensors, writeSafetensorsSync, type TensorToWrite } from '../../src/io/safetensors';
import { SPECIAL_TOKENS } from '../../src/tokenizer';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, mixedBatch, randomizeWeights } from './common';

describe('NativePolicy checkpoints', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-policy-'));
  const policy = NativePolicy.create(TEST_CONFIG, { seed: 4 });
  randomizeWeights(policy, 41);
  const file = path.join(dir, 'model.safetensors');
  const batch = mixedBatch(new Rng(3), policy.config.imageSize);
  afterAll(() => {
    policy.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const tensorsOf = (p: NativePolicy): TensorToWrite[] => p.parameters().map((t) => ({ name: t.name, shape: t.shape, data: p.getParameter(t.name) }));
  const meta = (over: Record<string, string> = {}): Record<string, string> => ({
    config: JSON.stringify({ vocab_size: 268, d_model: 32, n_layer: 2, n_head: 4, max_seq: 96, patch: 8, image_size: 16, channels: 3 }),
    tokenizer: JSON.stringify(SPECIAL_TOKENS),
    ...over,
  });

  test('save → load gives identical weights and outputs; the file has SPEC names, shapes and metadata', async () => {
    await policy.save(file);
    const { metadata, tensors } = readSafetensors(file);
    expect(JSON.parse(metadata.config)).toEqual({ vocab_size: 268, d_model: 32, n_layer: 2, n_head: 4, max_seq: 96, patch: 8, image_size: 16, channels: 3 });
    expect(JSON.parse(metadata.tokenizer)).toEqual([...SPECIAL_TOKENS]);
    expect(tensors.get('wte.weight')!.shape).toEqual([268, 32]);
    expect(tensors.get('patch_embed.weight')!.shape).toEqual([32, 3 * 8 * 8]);
    expect(tensors.get('h.1.attn.c_attn.weight')!.shape).toEqual([96, 32]);
    expect(tensors.get('h.0.mlp.c_proj.weight')!.shape).toEqual([32, 128]);
    expect(tensors.get('patch_pos.weight')!.shape).toEqual([4, 32]);
    expect(tensors.size).toBe(5 + 2 * 12 + 2);
    const loaded = await NativePolicy.load(file);
    expect(loaded.config).toEqual(policy.config);
    const a = await policy.forward(batch);
    const b = await loaded.forward(batch);
    a.logp.forEach((l, i) => expect(Array.from(b.logp[i])).toEqual(Array.from(l)));
    loaded.dispose();
    expect(fs.readdirSync(dir).filter((f) => f !== 'model.safetensors')).toEqual([]); // no temp file left
  });

  test('a file whose data section is not 4-byte aligned (a header of odd length) loads', async () => {
    await policy.save(file);
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = Buffer.concat([bytes.subarray(8, 8 + n), Buffer.from(' ')]); // JSON allows trailing spaces
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const f = path.join(dir, 'odd.safetensors');
    fs.writeFileSync(f, Buffer.concat([len, header, bytes.subarray(8 + n)]));
    const loaded = await NativePolicy.load(f);
    expect(Array.from(loaded.getParameter('ln_f.weight'))).toEqual(Array.from(policy.getParameter('ln_f.weight')));
    loaded.dispose();
    fs.rmSync(f);
  });

  test('bf16 checkpoints load (weights rounded to bf16)', async () => {
    const f = path.join(dir, 'bf16.safetensors');
    await policy.save(f, { dtype: 'BF16' });
    const loaded = await NativePolicy.load(f);
    const w = policy.getParameter('h.0.attn.c_attn.weight');
    const wl = loaded.getParameter('h.0.attn.c_attn.weight');
    for (let i = 0; i < w.length; i++) expect(Math.abs(wl[i] - w[i])).toBeLessThanOrEqual(Math.abs(w[i]) * 2 ** -8);
    loaded.dispose();
    fs.rmSync(f);
  });

  const rejects = async (name: string, make: (f: string) => void, msg: RegExp): Promise<void> => {
    const f = path.join(dir, `${name}.safetensors`);
    make(f);
    await expect(NativePolicy.load(f)).rejects.toThrow(msg);
    fs.rmSync(f);
  };

  test('a truncated file is rejected', async () => {
    await policy.save(file);
    const bytes = fs.readFileSync(file);
    await rejects('trunc', (f) => fs.writeFileSync(f, bytes.subarray(0, bytes.length - 100)), /truncated|cover/);
    await rejects('trunc-header', (f) => fs.writeFileSync(f, bytes.subarray(0, 40)), /truncated/);
    await rejects('empty', (f) => fs.writeFileSync(f, Buffer.alloc(0)), /truncated/);
    // a FIFO would block the open forever: refused as not a regular file
    const fifo = path.join(dir, 'fifo.safetensors');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    await expect(NativePolicy.load(fifo)).rejects.toThrow(new RegExp(`${fifo}: cannot open: not a regular file`));
    await expect(NativePolicy.load(dir)).rejects.toThrow(/cannot open: not a regular file/);
  });

  test('a hostile header is rejected before anything is allocated', async () => {
    const big = Buffer.alloc(16);
    big.writeBigUInt64LE(2n ** 60n);
    await rejects('hostile', (f) => fs.writeFileSync(f, big), /exceeds the limit/);
    const garbage = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a":1,"')]);
    await rejects('garbage', (f) => fs.writeFileSync(f, garbage), /not valid JSON|must be an object/);
  });

  test('a small file whose config claims a huge model is refused before the model is allocated', async () => {
    const base = tensorsOf(policy);
    const claim = (d: number, L: number): Record<string, string> => meta({ config: JSON.stringify({ vocab_size: 268, d_model: d, n_layer: L, n_head: 16, max_seq: 1024, patch: 8, image_size: 64, channels: 3 }) });
    for (const [d, L] of [[1024, 20], [2048, 48]]) {
      const f = path.join(dir, `claims-d${d}-L${L}.safetensors`);
      writeSafetensorsSync(f, base, claim(d, L));
      const rss0 = process.memoryUsage().rss;
      const t0 = Date.now();
      const err = await NativePolicy.load(f).then(() => null, (e: Error) => e);
      // The tensors are compared with the table the config implies before anything is built:
      // milliseconds, not the seconds and gigabytes of allocating first.
      expect(err?.name).toBe('RangeError'); // by name: the addon's errors come from another realm than jest's
      expect(err!.message).toContain(f);
      expect(err!.message).toMatch(/unexpected tensor|missing tensor|shape|maxParams|RAM/);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(process.memoryUsage().rss - rss0).toBeLessThan(64 << 20);
    }
    // A config over the ceiling is refused as such, whatever the tensors.
    const f = path.join(dir, 'ceiling.safetensors');
    writeSafetensorsSync(f, base, meta());
    await expect(NativePolicy.load(f, { maxParams: 1000 })).rejects.toThrow(new RegExp(`${f}.*more than \`maxParams\` 1000`));
  });

  test('wrong shape, missing, extra or non-finite tensors are rejected by name', async () => {
    const base = tensorsOf(policy);
    await rejects('shape', (f) => writeSafetensorsSync(f, base.map((t) => (t.name === 'h.1.mlp.c_fc.weight' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t)), meta()), /h\.1\.mlp\.c_fc\.weight.*shape/);
    await rejects('missing', (f) => writeSafetensorsSync(f, base.filter((t) => t.name !== 'ln_f.bias'), meta()), /missing tensor 'ln_f\.bias'/);
    await rejects('extra', (f) => writeSafetensorsSync(f, [...base, { name: 'h.2.ln_1.weight', shape: [32], data: new Float32Array(32) }], meta()), /unexpected tensor 'h\.2\.ln_1\.weight'/);
    const nan = base.map((t) => (t.name === 'wpe.weight' ? { ...t, data: Float32Array.from(t.data).fill(NaN, 5, 6) } : t));
    await rejects('nan', (f) => writeSafetensorsSync(f, nan, meta()), /wpe\.weight.*non-finite/);
  });

  test('a missing, malformed or mismatched config / tokenizer is rejected', async () => {
    const base = tensorsOf(policy);
    await rejects('noconfig', (f) => writeSafetensorsSync(f, base, { tokenizer: JSON.stringify(SPECIAL_TOKENS) }), /no "config"/);
    await rejects('badjson', (f) => writeSafetensorsSync(f, base, meta({ config: '{' })), /not valid JSON/);
    await rejects('badhead', (f) => writeSafetensorsSync(f, base, meta({ config: JSON.stringify({ vocab_size: 268, d_model: 32, n_layer: 2, n_head: 5, max_seq: 96, patch: 8, image_size: 16, channels: 3 }) })), /nHead/);
    await rejects('lacks', (f) => writeSafetensorsSync(f, base, meta({ config: JSON.stringify({ vocab_size: 268 }) })), /lacks "d_model"/);
    await rejects('tok', (f) => writeSafetensorsSync(f, base, meta({ tokenizer: JSON.stringify(['<|bos|>']) })), /tokenizer/);
    await rejects('tokjson', (f) => writeSafetensorsSync(f, base, meta({ tokenizer: '[<|bos|>' })), /tokenizer/);
    // a checkpoint written by another tool (Python json.dumps spacing, keys in another order) loads
    const f = path.join(dir, 'python.safetensors');
    const pyConfig = '{"n_layer": 2, "vocab_size": 268, "d_model": 32, "n_head": 4, "max_seq": 96, "patch": 8, "image_size": 16, "channels": 3}';
    writeSafetensorsSync(f, [...base].reverse(), { config: pyConfig, tokenizer: '[' + SPECIAL_TOKENS.map((t) => JSON.stringify(t)).join(', ') + ']' });
    const loaded = await NativePolicy.load(f);
    expect(Array.from(loaded.getParameter('h.1.mlp.c_fc.weight'))).toEqual(Array.from(policy.getParameter('h.1.mlp.c_fc.weight')));
    loaded.dispose();
  });

  test('optimizer state round trip: a reloaded optimizer takes the same next step', async () => {
    const run = async (p: NativePolicy): Promise<void> => {
      await p.crossEntropyBackward(batch);
      await p.step({ lr: 1e-2 });
    };
    const a = NativePolicy.create(TEST_CONFIG, { seed: 8 });
    await run(a);
    await run(a);
    await a.save(path.join(dir, 'a.safetensors'));
    await a.saveOptimizer(path.join(dir, 'a.optim.safetensors'));
    const b = await NativePolicy.load(path.join(dir, 'a.safetensors'));
    await b.loadOptimizer(path.join(dir, 'a.optim.safetensors'));
    expect(b.stepCount).toBe(2);
    await run(a);
    await run(b);
    expect(Array.from(b.getParameter('h.0.attn.c_attn.weight'))).toEqual(Array.from(a.getParameter('h.0.attn.c_attn.weight')));
    const other = NativePolicy.create({ ...TEST_CONFIG, dModel: 16, nHead: 2 });
    await expect(other.loadOptimizer(path.join(dir, 'a.optim.safetensors'))).rejects.toThrow(/parameters/);
    for (const p of [a, b, other]) p.dispose();
  });
});
