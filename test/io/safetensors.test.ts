import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { float32ToBf16, readSafetensors, toFloat32, writeSafetensors, writeSafetensorsSync } from '../../src/io/safetensors';
import { writeFileAtomicSync } from '../../src/io/atomic';
import { Rng } from '../helpers/random';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-st-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function rawFile(name: string, header: unknown, dataBytes: number, lenOverride?: bigint): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  return file;
}

describe('safetensors', () => {
  it('round-trips F32 tensors and metadata exactly', async () => {
    const rng = new Rng(3);
    const a = rng.f32(12);
    const b = rng.f32(5);
    const file = path.join(dir, 'ok.safetensors');
    await writeSafetensors(file, [{ name: 'wte.weight', shape: [3, 4], data: a }, { name: 'ln_f.bias', shape: [5], data: b }], { config: '{"d":4}' });
    const r = readSafetensors(file);
    expect(r.metadata).toEqual({ config: '{"d":4}' });
    expect(r.tensors.get('wte.weight')!.shape).toEqual([3, 4]);
    expect(Array.from(toFloat32(r.tensors.get('wte.weight')!))).toEqual(Array.from(a));
    expect(Array.from(toFloat32(r.tensors.get('ln_f.bias')!))).toEqual(Array.from(b));
    // header is padded so the data section starts 8-byte aligned
    const n = Number(fs.readFileSync(file).readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
  });

  it('stores BF16 with round-to-nearest-even (relative error <= 2^-8)', () => {
    const x = new Rng(4).f32(1000, 10);
    const file = path.join(dir, 'bf16.safetensors');
    writeSafetensorsSync(file, [{ name: 'w', shape: [1000], data: x, dtype: 'BF16' }]);
    const y = toFloat32(readSafetensors(file).tensors.get('w')!);
    for (let i = 0; i < x.length; i++) expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
    // exact ties go to even; NaN stays NaN
    const tie = new Float32Array(new Uint32Array([0x3f808000, 0x3f818000, 0x7fc00001]).buffer);
    const bf = Buffer.from(float32ToBf16(tie));
    expect([bf.readUInt16LE(0), bf.readUInt16LE(2)]).toEqual([0x3f80, 0x3f82]);
    expect(Number.isNaN(toFloat32({ dtype: 'BF16', shape: [1], bytes: bf.subarray(4) }, 'nan')[0])).toBe(true);
  });

  it('rejects truncated and hostile files with a clear message', () => {
    const good = path.join(dir, 'good.safetensors');
    writeSafetensorsSync(good, [{ name: 'w', shape: [4], data: new Float32Array(4) }]);
    const bytes = fs.readFileSync(good);
    const cut = path.join(dir, 'cut.safetensors');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 3));
    expect(() => readSafetensors(cut)).toThrow(/truncated|data section/);
    fs.writeFileSync(cut, bytes.subarray(0, 5));
    expect(() => readSafetensors(cut)).toThrow(/truncated/);
    expect(() => readSafetensors(rawFile('huge.st', {}, 0, 1n << 40n))).toThrow(/exceeds the limit/);
    expect(() => readSafetensors(rawFile('long.st', {}, 0, 1000n))).toThrow(/truncated/);
    const bad = path.join(dir, 'badjson.st');
    fs.writeFileSync(bad, Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{x:')]));
    expect(() => readSafetensors(bad)).toThrow(/not valid JSON/);
    expect(() => readSafetensors(rawFile('dtype.st', { w: { dtype: 'Q4', shape: [1], data_offsets: [0, 4] } }, 4))).toThrow(/unsupported dtype/);
    expect(() => readSafetensors(rawFile('shape.st', { w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 4))).toThrow(/shape \[2\]/);
    expect(() => readSafetensors(rawFile('neg.st', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4))).toThrow(/non-negative/);
    expect(() =>
      readSafetensors(rawFile('overlap.st', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8)),
    ).toThrow(/overlap/);
    expect(() => readSafetensors(rawFile('hole.st', { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8))).toThrow(/hole/);
    expect(() => readSafetensors(rawFile('meta.st', { __metadata__: { a: 1 } }, 0))).toThrow(/must be a string/);
    expect(() => readSafetensors(rawFile('arr.st', [1, 2], 0))).toThrow(/JSON object/);
  });

  it('writes atomically: a failed write leaves the previous file and no temp files', () => {
    const file = path.join(dir, 'atomic.bin');
    writeFileAtomicSync(file, 'first');
    expect(() => writeSafetensorsSync(file, [{ name: 'w', shape: [2], data: new Float32Array(3) }])).toThrow(/Expected 2 values/);
    expect(fs.readFileSync(file, 'utf8')).toBe('first');
    expect(() => writeFileAtomicSync(path.join(dir, 'no-such-dir', 'x'), 'y')).toThrow();
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
