// Hugging Face weights on disk: one file or shards with an index; the shards checked against the
// index (and back) before any data is read; F32/BF16/F16 read as float32; every error names the file.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeSafetensorsSync } from '../../src/io/safetensors';
import { openHfCheckpoint } from '../../src/models/hf_checkpoint';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-hf-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

const t = (name: string, shape: number[], start = 0) => ({ name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => start + i / 8) });

/** A model dir with two shards and an index (`edit` may change the weight_map before it is written). */
function sharded(name: string, edit: (m: Record<string, string>) => void = () => undefined): string {
  const dir = path.join(TMP, name);
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensorsSync(path.join(dir, 'model-00001-of-00002.safetensors'), [t('model.embed_tokens.weight', [4, 3]), t('model.norm.weight', [3], 1)], { format: 'pt' });
  writeSafetensorsSync(path.join(dir, 'model-00002-of-00002.safetensors'), [t('lm_head.weight', [4, 3], 2)], { format: 'pt' });
  const map: Record<string, string> = { 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors', 'model.norm.weight': 'model-00001-of-00002.safetensors', 'lm_head.weight': 'model-00002-of-00002.safetensors' };
  edit(map);
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 112 }, weight_map: map }));
  return dir;
}

test('two shards and an index: every tensor found, read exactly', async () => {
  const ck = await openHfCheckpoint(sharded('ok'));
  try {
    expect([...ck.tensors.keys()].sort()).toEqual(['lm_head.weight', 'model.embed_tokens.weight', 'model.norm.weight']);
    expect(ck.tensors.get('lm_head.weight')).toMatchObject({ dtype: 'F32', shape: [4, 3], file: expect.stringMatching(/model-00002-of-00002/) });
    expect(Array.from(await ck.readFloat32('model.norm.weight'))).toEqual([1, 1.125, 1.25]);
    await expect(ck.readFloat32('nope')).rejects.toThrow(/no tensor 'nope'/);
  } finally {
    await ck.close();
  }
});

test('a single model.safetensors; BF16 and F16 widen exactly', async () => {
  const dir = path.join(TMP, 'single');
  fs.mkdirSync(dir);
  const x = Float32Array.from([0, 1, -2.5, 65504, 2 ** -24, -(2 ** -14), 0.333251953125]); // all exact in fp16
  writeSafetensorsSync(path.join(dir, 'model.safetensors'), [{ name: 'a', shape: [7], data: x, dtype: 'BF16' }]);
  const ck = await openHfCheckpoint(dir);
  expect(Array.from(await ck.readFloat32('a')).slice(0, 3)).toEqual([0, 1, -2.5]);
  // readBf16: the raw bits (1 = 0x3f80, -2.5 = 0xc020), not widened.
  expect(Array.from(await ck.readBf16('a')).slice(0, 3)).toEqual([0, 0x3f80, 0xc020]);
  await ck.close();
  // F16: written by hand (the writer has no F16)
  const h = Buffer.alloc(14);
  [0x0000, 0x3c00, 0xc100, 0x7bff, 0x0001, 0x8400, 0x3555].forEach((v, i) => h.writeUInt16LE(v, 2 * i));
  const head = Buffer.from(JSON.stringify({ a: { dtype: 'F16', shape: [7], data_offsets: [0, 14] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, head, h]));
  const ck16 = await openHfCheckpoint(dir);
  expect(Array.from(await ck16.readFloat32('a'))).toEqual(Array.from(x));
  await expect(ck16.readBf16('a')).rejects.toThrow(/tensor 'a' has dtype F16, not BF16/);
  await ck16.close();
});

test('a damaged or inconsistent directory is refused by name, before any data is read', async () => {
  await expect(openHfCheckpoint(path.join(TMP, 'ok', 'nothing-here'))).rejects.toThrow(/no model\.safetensors and no model\.safetensors\.index\.json/);
  const missing = sharded('missing');
  fs.rmSync(path.join(missing, 'model-00002-of-00002.safetensors'));
  await expect(openHfCheckpoint(missing)).rejects.toThrow(/shard model-00002-of-00002\.safetensors \(holding 'lm_head\.weight' among others\) is missing/);
  await expect(openHfCheckpoint(sharded('escape', (m) => (m['lm_head.weight'] = '../ok/model-00002-of-00002.safetensors')))).rejects.toThrow(/not a file name inside the model directory/);
  await expect(openHfCheckpoint(sharded('moved', (m) => (m['lm_head.weight'] = 'model-00001-of-00002.safetensors')))).rejects.toThrow(/model-00002-of-00002\.safetensors: tensor 'lm_head\.weight' is not in model\.safetensors\.index\.json|tensor 'lm_head\.weight' is not in its shard/);
  await expect(openHfCheckpoint(sharded('unlisted', (m) => delete m['model.norm.weight']))).rejects.toThrow(/tensor 'model\.norm\.weight' is not in model\.safetensors\.index\.json/);
  await expect(openHfCheckpoint(sharded('ghost', (m) => (m['ghost.weight'] = 'model-00001-of-00002.safetensors')))).rejects.toThrow(/tensor 'ghost\.weight' is not in its shard model-00001-of-00002\.safetensors/);
  const trunc = sharded('truncated');
  const f = path.join(trunc, 'model-00001-of-00002.safetensors');
  fs.truncateSync(f, fs.statSync(f).size - 4);
  await expect(openHfCheckpoint(trunc)).rejects.toThrow(new RegExp(`${f}: .*truncated|${f}: data section`));
  const bad = sharded('badindex');
  fs.writeFileSync(path.join(bad, 'model.safetensors.index.json'), '{"weight_map": [1, 2]}');
  await expect(openHfCheckpoint(bad)).rejects.toThrow(/model\.safetensors\.index\.json: no "weight_map" object/);
});
