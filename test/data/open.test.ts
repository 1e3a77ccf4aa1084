// openDataset / guessKind (issue 18, "Real data end to end") on small files written into a temp dir:
// kind guessing for every kind, bad rows skipped and named (or thrown with strict), own splits of
// every layout opened into one dataset, the annotation hash, and info computed without decoding.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gzipSync, zipSync } from 'fflate';
import sharp from 'sharp';
import { DATASET_KINDS, guessKind, openDataset, type OpenedDataset } from '../../src/data/open';
import { LoaderError, openJsonl, openSlake } from '../../src/data/loaders';
import type { VqaItem } from '../../src/data/types';
import { Rng } from '../helpers/random';
import { npyBytes as npy } from '../helpers/datasets';

let dir: string;
const at = (rel: string): string => path.join(dir, rel);
const w = (rel: string, data: string | Uint8Array): string => {
  const p = at(rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
  return p;
};
const jsonl = (rel: string, rows: unknown[]): string => w(rel, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
let PNG: Buffer;
const png = (rel: string): string => w(rel, PNG);
const allItems = async (o: OpenedDataset): Promise<VqaItem[]> => {
  const out: VqaItem[] = [];
  for (let i = 0; i < o.dataset.size; i++) out.push(await o.dataset.get(i));
  return out;
};

const split = (n: number, labels: number[]): Record<string, Uint8Array> => ({
  images: npy('|u1', [n, 4, 4], new Uint8Array(n * 16).map((_, i) => i)),
  labels: npy('<i8', [n, 1], new Uint8Array(new BigInt64Array(labels.map(BigInt)).buffer)),
});

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-open-'));
  PNG = await sharp(Buffer.alloc(16 * 12, 90), { raw: { width: 16, height: 12, channels: 1 } }).png().toBuffer();
  png('img/a.png');
  png('img/b.png');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('guessKind', () => {
  test('every kind, from a file extension or a folder layout', () => {
    png('g/rad/VQA_RAD Image Folder/synpic1.jpg');
    w('g/rad/VQA_RAD Dataset Public.json', '[]');
    png('g/rad2/images/x.jpg');
    w('g/rad2/annotations.json', '[]');
    png('g/slake/imgs/xmlab0/source.jpg');
    w('g/slake/test.json', '[]');
    w('g/pmc/train_2.csv', 'Figure_path\n');
    w('g/omni/QA_information/Open-access/x.json', '[]');
    w('g/user/data.jsonl', '');
    png('g/user/images/a.png');
    w('g/one/questions.jsonl', '');
    const cases: [string, string][] = [
      ['x/data.jsonl', 'jsonl'],
      ['x/manifest.json', 'manifest'],
      ['x/items.CSV', 'csv'],
      ['x/pathmnist.npz', 'medmnist'],
      ['g/user', 'jsonl'],
      ['g/one', 'jsonl'],
      ['g/rad', 'vqa-rad'],
      ['g/rad2', 'vqa-rad'],
      ['g/slake', 'slake'],
      ['g/pmc', 'pmc-vqa'],
      ['g/omni', 'omnimedvqa'],
    ];
    for (const [p, kind] of cases) expect([p, guessKind(at(p))]).toEqual([p, kind]);
    // Every kind is reachable by guessing.
    expect(new Set(cases.map((c) => c[1]))).toEqual(new Set(DATASET_KINDS));
  });

  test('unknown and ambiguous paths are LoaderErrors that list the kinds', async () => {
    const kinds = new RegExp(DATASET_KINDS.map((k) => `${k} \\(`).join('.*'));
    w('g/empty/readme.txt', 'hi');
    w('g/both/data.jsonl', '');
    png('g/both/images/a.png');
    w('g/both/meta.json', '{}');
    w('g/many/a.jsonl', '');
    w('g/many/b.jsonl', '');
    for (const p of ['g/empty', 'g/empty/readme.txt', 'g/nothing-here', 'g/many']) {
      expect(() => guessKind(at(p))).toThrow(LoaderError);
      expect(() => guessKind(at(p))).toThrow(kinds);
    }
    expect(() => guessKind(at('g/both'))).toThrow(/ambiguous: it looks like jsonl and vqa-rad; pass a kind: jsonl/);
    await expect(openDataset({ path: at('g/both') })).rejects.toThrow(/ambiguous/);
    // With the kind given, the same folder opens.
    expect((await openDataset({ path: at('g/both'), kind: 'jsonl' })).kind).toBe('jsonl');
    await expect(openDataset({ path: at('g/both'), kind: 'nope' as never })).rejects.toThrow(/unknown dataset kind "nope"; pass a kind: jsonl/);
  });
});

describe('JSONL through openDataset', () => {
  const good = { image: 'img/a.png', question: 'Which?', options: ['x', 'y', 'z'], answer: 'B', modality: 'ct', question_type: 'diagnosis', box: [1, 2, 8, 9] };
  const rows = [
    good, // 1
    '{"image": "img/a.png", "question": "q", "answer": 0', // 2: malformed JSON
    { image: 'img/a.png', question: 'q', options: ['x', 'y'], answer: 'C' }, // 3: answer not an option
    { image: 'img/none.png', question: 'q', answer: 'a' }, // 4: missing image
    '', // 5: blank (not a row)
    { image: 'img/b.png', question: 7, answer: 'a' }, // 6: wrong field type
    { image: '../../etc/passwd', question: 'q', answer: 'a' }, // 7: outside the root
    { image: 'img', question: 'q', answer: 'a' }, // 8: a directory
    { id: 'open', image: 'img/b.png', question: 'Organ?', answer: 'Liver', question_type: 'open' }, // 9
    { id: 'yn', image: 'img/b.png', question: 'Mass?', answer: 'Yes' }, // 10
    { id: 'yn', image: 'img/a.png', question: 'again', answer: 'no' }, // 11: duplicate id
    { image: 'img/a.png', question: 'Mass?', options: ['No', 'Yes'], answer: 1, split: 'weird' }, // 12: bad split
  ];

  test('bad rows are skipped and named file:line; the rest is usable', async () => {
    const file = jsonl('j/data.jsonl', rows);
    png('j/img/a.png');
    png('j/img/b.png');
    fs.mkdirSync(at('j/img'), { recursive: true });
    const o = await openDataset({ path: file });
    expect(o.kind).toBe('jsonl');
    expect(o.path).toBe(file);
    expect(o.annotationFiles).toEqual([file]);
    expect(o.skipped.map((s) => s.where)).toEqual([2, 3, 4, 6, 7, 8, 11, 12].map((l) => `${file}:${l}`));
    const msg = Object.fromEntries(o.skipped.map((s) => [Number(s.where.split(':').pop()), s.message]));
    expect(msg[2]).toMatch(/^invalid JSON/);
    expect(msg[3]).toBe('answer "C" is none of the options');
    expect(msg[4]).toMatch(/^image "img\/none.png" not found/);
    expect(msg[6]).toMatch(/^Expected string for question/);
    expect(msg[7]).toMatch(/outside the dataset root/);
    expect(msg[8]).toMatch(/is not a regular file/);
    expect(msg[11]).toBe(`duplicate id "yn" (first at ${file}:10)`);
    expect(msg[12]).toMatch(/^split must be "train", "val", "validate" or "test"/);
    expect(o.dataset.size).toBe(3);
    expect(o.where).toEqual([1, 9, 10].map((l) => `${file}:${l}`));
    expect(o.info).toEqual([
      { id: 'data.jsonl:1', hasBox: true, modality: 'ct', questionType: 'diagnosis', open: false, yesNo: false },
      { id: 'open', hasBox: false, modality: 'unknown', questionType: 'open', open: true, yesNo: false },
      { id: 'yn', hasBox: false, modality: 'unknown', questionType: 'unknown', open: true, yesNo: true },
    ]);
    const items = await allItems(o);
    expect(items.map((it) => it.id)).toEqual(['data.jsonl:1', 'open', 'yn']);
    expect(items[0]).toMatchObject({ answer: 1, box: [1, 2, 8, 9], image: { width: 16, height: 12 } });
  });

  test('a folder holding data.jsonl opens the same; the legacy loader takes onSkip too', async () => {
    const o = await openDataset({ path: at('j') });
    expect(o.path).toBe(at('j'));
    expect(o.annotationFiles).toEqual([at('j/data.jsonl')]);
    expect(o.info.length).toBe(3);
    const skipped: string[] = [];
    const ds = openJsonl(at('j/data.jsonl'), { onSkip: (where) => skipped.push(where), checkImages: true });
    expect(ds.size).toBe(4); // no shared id map here: the duplicate id is not checked
    expect(skipped).toHaveLength(7);
    expect(() => openJsonl(at('j/data.jsonl'))).toThrow(/data\.jsonl:2: invalid JSON/); // default: unchanged
  });

  test('strict throws the first bad row in reading order, named', async () => {
    const file = at('j/data.jsonl');
    await expect(openDataset({ path: file, strict: true })).rejects.toThrow(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: invalid JSON`));
    // A missing image before a malformed line is the first.
    const f2 = jsonl('j/strict.jsonl', [good, { image: 'img/none.png', question: 'q', answer: 'a' }, '{oops']);
    await expect(openDataset({ path: f2, strict: true })).rejects.toThrow(/strict\.jsonl:2: image "img\/none.png" not found/);
    await expect(openDataset({ path: f2, strict: true })).rejects.toBeInstanceOf(LoaderError);
    const ok = jsonl('j/clean.jsonl', [good, { ...good, id: 'b' }]);
    const o = await openDataset({ path: ok, strict: true });
    expect(o.skipped).toEqual([]);
    expect(o.info).toHaveLength(2);
  });

  test('split fields: train, val, validate, test, absent; stream({split}) follows them', async () => {
    const mk = (id: string, s?: string) => ({ id, image: 'img/a.png', question: 'q', answer: 'a', ...(s === undefined ? {} : { split: s }) });
    const file = jsonl('s/data.jsonl', [mk('a', 'train'), mk('b', 'val'), mk('c', 'validate'), mk('d', 'TEST'), mk('e'), mk('f', 'validation')]);
    png('s/img/a.png');
    const o = await openDataset({ path: file });
    expect(o.info.map((x) => x.split)).toEqual(['train', 'val', 'val', 'test', undefined, 'val']);
    const ids = async (s: 'train' | 'val' | 'test'): Promise<string[]> => {
      const out: string[] = [];
      for await (const it of o.dataset.stream({ split: s, fractions: [0, 0, 1] })) out.push(it.id);
      return out;
    };
    // Own splits win; the item without one falls to the seeded hash (here: all to test).
    expect(await ids('train')).toEqual(['a']);
    expect(await ids('val')).toEqual(['b', 'c', 'f']);
    expect(await ids('test')).toEqual(['d', 'e']);
  });

  test('info is computed without decoding: corrupt images open, and fail on get naming the line', async () => {
    w('c/img/x.png', 'not a png at all');
    w('c/img/y.png', PNG.subarray(0, 40));
    const file = jsonl('c/data.jsonl', [
      { image: 'img/x.png', question: 'q', options: ['yes', 'no'], answer: 'no' },
      { image: 'img/y.png', question: 'q', answer: 'a', box: [0, 0, 2, 2] },
    ]);
    const o = await openDataset({ path: file, strict: true });
    expect(o.info).toEqual([
      { id: 'data.jsonl:1', hasBox: false, modality: 'unknown', questionType: 'unknown', open: false, yesNo: true },
      { id: 'data.jsonl:2', hasBox: true, modality: 'unknown', questionType: 'unknown', open: true, yesNo: false },
    ]);
    await expect(o.dataset.get(0)).rejects.toThrow(/c\/data\.jsonl:1: unreadable image/);
    await expect(o.dataset.get(1)).rejects.toThrow(/c\/data\.jsonl:2: unreadable image/);
  });

  test('sha256 over the annotation bytes: stable, and changes with the file', async () => {
    const file = jsonl('h/data.jsonl', [{ image: 'img/a.png', question: 'q', answer: 'a' }]);
    png('h/img/a.png');
    const a = await openDataset({ path: file });
    const b = await openDataset({ path: file });
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(b.sha256).toBe(a.sha256);
    expect(a.sha256).toBe(require('crypto').createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
    fs.appendFileSync(file, JSON.stringify({ image: 'img/a.png', question: 'q2', answer: 'b' }) + '\n');
    const c = await openDataset({ path: file });
    expect(c.sha256).not.toBe(a.sha256);
    expect(c.info).toHaveLength(2);
  });

  test('NIfTI: spec axis/slice apply to rows that do not say; row fields win', async () => {
    const nx = 5, ny = 4, nz = 3;
    const buf = new ArrayBuffer(352 + nx * ny * nz * 2);
    const dv = new DataView(buf);
    dv.setInt32(0, 348, true);
    [3, nx, ny, nz, 1, 1, 1, 1].forEach((d, i) => dv.setInt16(40 + 2 * i, d, true));
    dv.setInt16(70, 4, true);
    dv.setInt16(72, 16, true);
    for (let i = 0; i < 8; i++) dv.setFloat32(76 + 4 * i, 1, true);
    dv.setFloat32(108, 352, true);
    dv.setFloat32(112, 1, true);
    new Uint8Array(buf).set(Buffer.from('n+1\0'), 344);
    for (let i = 0; i < nx * ny * nz; i++) dv.setInt16(352 + 2 * i, i, true);
    w('v/vol.nii.gz', gzipSync(new Uint8Array(buf)));
    const file = jsonl('v/data.jsonl', [
      { image: 'vol.nii.gz', question: 'q', answer: 'a' },
      { image: 'vol.nii.gz', question: 'q', answer: 'a', axis: 2, slice: 2 },
    ]);
    const o = await openDataset({ path: file, axis: 0, slice: 1 });
    const [a, b] = await allItems(o);
    expect(a.image).toMatchObject({ width: ny, height: nz }); // sagittal
    expect(b.image).toMatchObject({ width: nx, height: ny }); // axial
  });
});

describe('JSON and CSV manifests', () => {
  test('manifest: a .json list of JSONL records; bad entries named file[i]', async () => {
    png('m/img/a.png');
    const file = w('m/manifest.json', JSON.stringify([
      { image: 'img/a.png', question: 'q', options: ['a', 'b'], answer: 'b', split: 'test' },
      { image: 'img/a.png', question: 'q', options: ['a', 'b'], answer: 'c' },
      'nope',
      { image: 'img/gone.png', question: 'q', answer: 'x' },
    ]));
    const o = await openDataset({ path: file });
    expect(o.kind).toBe('manifest');
    expect(o.info).toEqual([{ id: 'manifest.json[0]', split: 'test', hasBox: false, modality: 'unknown', questionType: 'unknown', open: false, yesNo: false }]);
    expect(o.skipped.map((s) => s.where)).toEqual([1, 2, 3].map((i) => `${file}[${i}]`));
    expect(o.skipped[1].message).toBe('expected a JSON object but found a string');
    expect((await o.dataset.get(0)).answer).toBe(1);
    await expect(openDataset({ path: w('m/obj.json', '{"x": 1}') })).rejects.toThrow(/obj\.json: expected a JSON list of records/);
  });

  test('csv: columns as in JSONL; options as "a|b" or JSON or option_A…; malformed rows named file:line', async () => {
    png('k/img/a.png');
    const file = w(
      'k/items.csv',
      [
        'ID,Image,Question,Options,Answer,Modality,Question_Type,Split,Box,Slice',
        'r1,img/a.png,"Which one, then?",CT|MRI|PET,B,ct,modality,train,"1 2 8 9",',
        'r2,img/a.png,Index?,"[""a"",""b""]",1,,,test,,',
        'r3,img/a.png,Open?,,Liver,,,,,',
        'r4,img/a.png,Bad answer,CT|MRI,Z,,,,,',
        'r5,img/a.png,Too,many,cells,here,x,y,z,w,v,u',
        'r6,img/missing.png,Where?,,here,,,,,',
        'r7,img/a.png,Slice?,,x,,,,,half',
      ].join('\n') + '\n',
    );
    const o = await openDataset({ path: file });
    expect(o.kind).toBe('csv');
    expect(o.info.map((x) => [x.id, x.split, x.hasBox, x.open])).toEqual([
      ['r1', 'train', true, false],
      ['r2', 'test', false, false],
      ['r3', undefined, false, true],
    ]);
    expect(o.skipped.map((s) => s.where)).toEqual([5, 6, 7, 8].map((l) => `${file}:${l}`));
    expect(o.skipped[0].message).toBe('answer "Z" is none of the options');
    expect(o.skipped[1].message).toBe('malformed row: 12 fields but the header has 10');
    expect(o.skipped[2].message).toMatch(/^image "img\/missing.png" not found/);
    expect(o.skipped[3].message).toMatch(/slice/);
    const [a, b] = await allItems(o);
    expect(a).toMatchObject({ question: 'Which one, then?', options: ['CT', 'MRI', 'PET'], answer: 1, modality: 'ct', box: [1, 2, 8, 9] });
    expect(b).toMatchObject({ options: ['a', 'b'], answer: 1 });
    const cols = w('k/cols.csv', 'image,question,option_A,option_B,answer\nimg/a.png,q,yes,no,A\n');
    expect((await openDataset({ path: cols })).info[0]).toMatchObject({ open: false, yesNo: true });
    await expect(openDataset({ path: w('k/nohead.csv', 'img,question\nx,y\n') })).rejects.toThrow(/nohead\.csv:1: the header has no "image", "answer" column/);
  });
});

describe('public layouts: every split opened into one dataset', () => {
  test('SLAKE: train + validate + test → info.split; language; ids unique', async () => {
    png('slake/imgs/xmlab0/source.jpg');
    const q = (qid: number, lang = 'en', extra: Record<string, unknown> = {}) => ({ qid, img_name: 'xmlab0/source.jpg', question: 'Which organ?', answer: qid % 2 ? 'Lung' : 'Yes', answer_type: qid % 2 ? 'OPEN' : 'CLOSED', modality: 'X-Ray', content_type: 'Organ', q_lang: lang, ...extra });
    w('slake/train.json', JSON.stringify([q(1), q(2), q(3, 'zh'), q(4, 'en', { img_name: 'xmlab9/source.jpg' })]));
    w('slake/validate.json', JSON.stringify([q(5)]));
    w('slake/test.json', JSON.stringify([q(6), q(7), q(1)]));
    const o = await openDataset({ path: at('slake') });
    expect(o.kind).toBe('slake');
    expect(o.annotationFiles).toEqual(['train', 'validate', 'test'].map((s) => at(`slake/${s}.json`)));
    expect(o.info.map((x) => [x.id, x.split])).toEqual([
      ['slake/1', 'train'],
      ['slake/2', 'train'],
      ['slake/5', 'val'],
      ['slake/6', 'test'],
      ['slake/7', 'test'],
    ]);
    expect(o.info[1]).toMatchObject({ modality: 'xray', questionType: 'closed:organ', open: false, yesNo: true });
    expect(o.skipped.map((s) => s.where)).toEqual([at('slake/train.json[3]'), at('slake/test.json[2]')]);
    expect(o.skipped[1].message).toBe(`duplicate id "slake/1" (first at ${at('slake/train.json[0]')})`);
    const zh = await openDataset({ path: at('slake'), language: 'zh' });
    expect(zh.info.map((x) => x.id)).toEqual(['slake/3']);
    expect((await openSlake(at('slake'), { split: 'test' })).size).toBe(3); // legacy: one split, unchecked
  });

  test('PMC-VQA: train + test csv → train/test', async () => {
    png('pmc/images/f1.jpg');
    const head = 'Figure_path,Question,Answer,Choice A,Choice B,Choice C,Choice D,Answer_label\n';
    w('pmc/train.csv', head + 'f1.jpg,What?,B:MRI,A:CT,B:MRI,C:PET,D:US,B\nf1.jpg,Bad?,E:x,A:CT,B:MRI,,,E\n');
    w('pmc/test_2.csv', head + 'f1.jpg,Which?,A:CT,A:CT,B:MRI,,,A\nmissing.jpg,Which?,A:CT,A:CT,B:MRI,,,A\n');
    const o = await openDataset({ path: at('pmc') });
    expect(o.kind).toBe('pmc-vqa');
    expect(o.info.map((x) => [x.id, x.split])).toEqual([
      ['pmc-vqa/train/0', 'train'],
      ['pmc-vqa/test/0', 'test'],
    ]);
    expect(o.skipped.map((s) => s.where)).toEqual([at('pmc/train.csv:3'), at('pmc/test_2.csv:3')]);
    expect((await o.dataset.get(1)).options).toEqual(['CT', 'MRI']);
  });

  test('MedMNIST: train/val/test arrays → one dataset with splits; ids unique', async () => {
    const tr = split(3, [0, 1, 2]);
    const va = split(1, [3]);
    const te = split(2, [1, 9]); // 9: a label with no name (octmnist has 4)
    const file = w('octmnist.npz', zipSync({ 'train_images.npy': tr.images, 'train_labels.npy': tr.labels, 'val_images.npy': va.images, 'val_labels.npy': va.labels, 'test_images.npy': te.images, 'test_labels.npy': te.labels }));
    const o = await openDataset({ path: file });
    expect(o.kind).toBe('medmnist');
    expect(o.annotationFiles).toEqual([file]);
    expect(o.info.map((x) => [x.id, x.split])).toEqual([
      ['octmnist/train/0', 'train'],
      ['octmnist/train/1', 'train'],
      ['octmnist/train/2', 'train'],
      ['octmnist/val/0', 'val'],
      ['octmnist/test/0', 'test'],
    ]);
    expect(o.info[0]).toMatchObject({ modality: 'oct', questionType: 'diagnosis', open: false, yesNo: false, hasBox: false });
    expect(o.skipped).toEqual([{ where: `${file}[test/1]`, message: 'label 9 has no name (4 labels given)' }]);
    const items = await allItems(o);
    expect(items[3].options[items[3].answer as number]).toBe('normal');
    expect(items[4].image.data[0]).toBe(0);
    await expect(openDataset({ path: file, strict: true })).rejects.toThrow(/octmnist\.npz: label 9 has no name/);
    const only = w('pneumoniamnist.npz', zipSync({ 'test_images.npy': te.images, 'test_labels.npy': split(2, [1, 0]).labels }));
    expect((await openDataset({ path: only })).info.map((x) => x.split)).toEqual(['test', 'test']);
  });

  test('VQA-RAD: phrase_type test_* → test, else train', async () => {
    png('rad/VQA_RAD Image Folder/synpic1.jpg');
    w('rad/VQA_RAD Dataset Public.json', JSON.stringify([
      { qid: 1, image_name: 'synpic1.jpg', question: 'Mass?', answer: 'Yes', answer_type: 'CLOSED', question_type: 'PRES', image_organ: 'CHEST', phrase_type: 'freeform' },
      { qid: 2, image_name: 'synpic1.jpg', question: 'Where?', answer: 'left lung', answer_type: 'OPEN', question_type: 'POS', image_organ: 'HEAD', phrase_type: 'test_para' },
      { qid: 3, image_name: 'synpic404.jpg', question: 'Where?', answer: 'x', phrase_type: 'test_freeform' },
    ]));
    const o = await openDataset({ path: at('rad') });
    expect(o.info).toEqual([
      { id: 'vqa-rad/1', split: 'train', hasBox: false, modality: 'xray', questionType: 'closed:pres', open: false, yesNo: true },
      { id: 'vqa-rad/2', split: 'test', hasBox: false, modality: 'ct/mri', questionType: 'open:pos', open: true, yesNo: false },
    ]);
    expect(o.skipped.map((s) => s.where)).toEqual([at('rad/VQA_RAD Dataset Public.json[2]')]);
  });

  test('OmniMedVQA: no split of its own', async () => {
    png('omni/Images/A/im1.png');
    w('omni/QA_information/Open-access/A.json', JSON.stringify([
      { question_id: 'A1', question_type: 'Disease Diagnosis', question: 'Glaucoma?', gt_answer: 'No', option_A: 'Yes', option_B: 'No', image_path: 'Images/A/im1.png', modality_type: 'Fundus Photography' },
      { question_id: 'A2', question: 'q', gt_answer: 'C', option_A: 'a', image_path: 'Images/A/im1.png' },
    ]));
    const o = await openDataset({ path: at('omni') });
    expect(o.info).toEqual([{ id: 'omnimedvqa/A1', hasBox: false, modality: 'fundus photography', questionType: 'disease diagnosis', open: false, yesNo: true }]);
    expect(o.skipped).toEqual([{ where: at('omni/QA_information/Open-access/A.json[1]'), message: 'gt_answer "C" is none of the options' }]);
  });
});

test('mutated JSONL: every non-empty line is either an item or a skipped row, never lost or thrown', async () => {
  const rng = new Rng(18);
  png('f/img/a.png');
  const base = [
    { id: 'a', image: 'img/a.png', question: 'Which?', options: ['x', 'y'], answer: 'B', box: [1, 2, 3, 4], split: 'train' },
    { id: 'b', image: 'img/a.png', question: 'Organ?', answer: 'Liver' },
    { id: 'c', image: 'img/a.png', question: 'Mass?', options: ['yes', 'no'], answer: 0, split: 'test' },
  ].map((r) => JSON.stringify(r));
  let kept = 0;
  let skipped = 0;
  for (let c = 0; c < 150; c++) {
    const lines = base.map((l) => {
      const chars = [...l];
      for (let k = rng.int(0, 3); k > 0; k--) {
        const i = rng.int(0, chars.length);
        if (rng.next() < 0.5) chars.splice(i, 1);
        else chars.splice(i, 0, '{}[]":,0a/\\.'[rng.int(0, 12)]);
      }
      return chars.join('');
    });
    const file = w('f/data.jsonl', lines.join('\n'));
    const o = await openDataset({ path: file });
    const nonEmpty = lines.filter((l) => l.trim() !== '').length;
    expect(o.info.length + o.skipped.length).toBe(nonEmpty);
    expect(o.where.length).toBe(o.info.length);
    for (const s of o.skipped) expect(s.where).toMatch(/data\.jsonl:\d+$/);
    expect(new Set(o.info.map((x) => x.id)).size).toBe(o.info.length);
    kept += o.info.length;
    skipped += o.skipped.length;
  }
  // Both outcomes are reached (fixed seed: the counts are deterministic).
  expect(kept).toBeGreaterThan(50);
  expect(skipped).toBeGreaterThan(50);
});
