// Every loader on small files this test writes into a temp dir, plus the errors users will hit.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gzipSync, zipSync } from 'fflate';
import sharp from 'sharp';
import {
  LoaderError,
  openJsonl,
  openMedMnist,
  openOmniMedVqa,
  openPmcVqa,
  openSlake,
  openVqaRad,
  parseCsv,
  parseNpy,
  readDicom,
  readImageFile,
  readNiftiSlice,
} from '../../src/data/loaders';
import { checkEnv, make } from '../../src/env';
import type { Dataset, VqaItem } from '../../src/data/types';
import { dicomBytes, niftiBytes as niftiFile, npyBytes as npy, writeUnder } from '../helpers/datasets';

let dir: string;
const w = (rel: string, data: string | Uint8Array): string => writeUnder(dir, rel, data);
const png = async (rel: string, channels: 1 | 3, v: number): Promise<void> => {
  const data = Buffer.alloc(16 * 12 * channels, v);
  w(rel, await sharp(data, { raw: { width: 16, height: 12, channels } }).toColourspace(channels === 1 ? 'b-w' : 'srgb').png().toBuffer());
};
const all = async (ds: Dataset): Promise<VqaItem[]> => {
  const out: VqaItem[] = [];
  for await (const it of ds.stream()) out.push(it);
  return out;
};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-loaders-'));
  await png('img/a.png', 1, 100);
  await png('img/b.png', 3, 200);
  w('img/c.png', await sharp(Buffer.from(Array.from({ length: 16 * 12 * 3 }, (_, i) => (i % 3) * 60)), { raw: { width: 16, height: 12, channels: 3 } }).png().toBuffer());
  w('img/broken.png', 'this is not a png');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('JSONL', () => {
  test('reads items; answer as letter, index or text; open questions; lazy images', async () => {
    const f = w(
      'data.jsonl',
      [
        { image: 'img/a.png', question: 'Which?', options: ['x', 'y', 'z'], answer: 'B', modality: 'ct', question_type: 'diagnosis', box: [1, 2, 8, 9] },
        { id: 'two', image: 'img/b.png', question: 'Color?', options: ['red', 'grey'], answer: 'grey' },
        { id: 'rgb', image: 'img/c.png', question: 'Color?', options: ['red', 'grey'], answer: 0 },
        { image: 'img/a.png', question: 'Organ?', answer: 'Liver', question_type: 'open' },
      ]
        .map((o) => JSON.stringify(o))
        .join('\n') + '\n\n',
    );
    const ds = openJsonl(f);
    expect(ds.size).toBe(4);
    const [a, b, rgb, c] = await all(ds);
    expect(rgb.image.channels).toBe(3);
    expect([rgb.image.data[0], rgb.image.data[1], rgb.image.data[2]]).toEqual([0, 60, 120]);
    expect(a).toMatchObject({ id: 'data.jsonl:1', answer: 1, modality: 'ct', questionType: 'diagnosis', box: [1, 2, 8, 9] });
    expect(a.image).toMatchObject({ width: 16, height: 12, channels: 1, bitDepth: 8 });
    expect(a.image.data[0]).toBe(100);
    expect(b).toMatchObject({ id: 'two', answer: 1 });
    expect(b.image.channels).toBe(1); // an RGB file whose pixels are all grey is read as grey
    expect(c).toMatchObject({ options: [], answer: 'Liver', modality: 'unknown' });
  });

  test('16-bit greyscale PNGs keep their 16 bits', async () => {
    const a = new Uint16Array(8 * 4).map((_, i) => i * 1000);
    w('img/deep.png', await sharp(a, { raw: { width: 8, height: 4, channels: 1 } }).toColourspace('grey16').png().toBuffer());
    const img = await readImageFile(path.join(dir, 'img/deep.png'));
    expect(img).toMatchObject({ bitDepth: 16, channels: 1, width: 8, height: 4 });
    expect(Array.from(img.data)).toEqual(Array.from(a));
  });

  test.each([
    ['{"image": "img/a.png", "question": "q", "answer": 0', /bad\.jsonl:1: invalid JSON/],
    ['{"image": "img/a.png", "answer": "A"}', /bad\.jsonl:1: Expected string for question/],
    ['{"image": "img/a.png", "question": "q", "options": ["x"], "answer": "C"}', /answer "C" is none of the options/],
  ])('bad line %s', (text, err) => {
    const f = w('bad.jsonl', text);
    expect(() => openJsonl(f)).toThrow(err);
  });

  test('missing, unreadable and out-of-root images are clear errors', async () => {
    const mk = (image: string) => openJsonl(w('x.jsonl', JSON.stringify({ image, question: 'q', answer: 'a' })));
    await expect(mk('img/none.png').get(0)).rejects.toThrow(/image "img\/none.png" not found/);
    await expect(mk('img/broken.png').get(0)).rejects.toThrow(/unreadable image/);
    await expect(mk('../../etc/passwd').get(0)).rejects.toThrow(/outside the dataset root/);
    await expect(mk('/etc/passwd').get(0)).rejects.toThrow(/outside the dataset root/);
    fs.symlinkSync('/etc', path.join(dir, 'img', 'link'));
    await expect(mk('img/link/hostname').get(0)).rejects.toThrow(/outside the dataset root/);
    await expect(mk('img/a.png').get(5)).rejects.toThrow(/Expected index/);
    expect(() => openJsonl(path.join(dir, 'nope.jsonl'))).toThrow(LoaderError);
  });

  test('seeded splits and shuffles', () => {
    const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ id: `q${i}`, image: 'img/a.png', question: 'q', answer: 'a' }));
    const ds = openJsonl(w('many.jsonl', lines.join('\n')));
    const tr = ds.indices({ split: 'train', seed: 1 });
    const te = ds.indices({ split: 'test', seed: 1 });
    const va = ds.indices({ split: 'val', seed: 1 });
    expect(tr.length + te.length + va.length).toBe(50);
    expect(tr.filter((i) => te.includes(i))).toEqual([]);
    expect(ds.indices({ split: 'train', seed: 1, shuffle: true })).toEqual(ds.indices({ split: 'train', seed: 1, shuffle: true }));
    expect(ds.indices({ shuffle: true, seed: 1 })).not.toEqual(ds.indices({}));
  });
});


describe('MedMNIST .npz', () => {
  test('parses images and int64 labels into balanced multiple choice', async () => {
    const n = 6;
    const images = new Uint8Array(n * 4 * 4).map((_, i) => i % 256);
    const labels = new BigInt64Array([0n, 1n, 2n, 3n, 1n, 0n]);
    const f = w('octmnist.npz', zipSync({ 'train_images.npy': npy('|u1', [n, 4, 4], images), 'train_labels.npy': npy('<i8', [n, 1], new Uint8Array(labels.buffer)) }));
    const ds = openMedMnist(f);
    expect(ds.size).toBe(6);
    const items = await all(ds);
    const names = ['choroidal neovascularization', 'diabetic macular edema', 'drusen', 'normal'];
    items.forEach((it, k) => {
      expect(it.modality).toBe('oct');
      expect(it.options[it.answer as number]).toBe(names[Number(labels[k])]);
      expect(it.image).toMatchObject({ width: 4, height: 4, channels: 1 });
      expect(it.image.data[0]).toBe(images[k * 16]);
    });
    expect(() => openMedMnist(f, { split: 'test' })).toThrow(/no test_images.npy inside/);
  });
  test('bad files', () => {
    expect(() => openMedMnist(w('junk.npz', 'nope'))).toThrow(/not a readable .npz/);
    expect(() => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).toThrow(/not a .npy/);
    expect(() => parseNpy(npy('|u1', [10, 4], new Uint8Array(3)))).toThrow(/truncated/);
    const multi = w('chestmnist.npz', zipSync({ 'train_images.npy': npy('|u1', [1, 2, 2], new Uint8Array(4)), 'train_labels.npy': npy('|u1', [1, 3], new Uint8Array(3)) }));
    expect(() => openMedMnist(multi)).toThrow(/multi-label/);
  });
});


describe('NIfTI and DICOM', () => {
  test('NIfTI slices on each axis, .nii and .nii.gz, HU kept as stored + offset', async () => {
    const f = (x: number, y: number, z: number) => x + 10 * y + 100 * z - 1024;
    const raw = niftiFile(5, 4, 3, f);
    const a = w('vol.nii', raw);
    const b = w('vol.nii.gz', gzipSync(raw));
    for (const file of [a, b]) {
      const ax = await readNiftiSlice(file, { slice: 2 });
      expect(ax.image).toMatchObject({ width: 5, height: 4, bitDepth: 16 });
      expect(ax.slices).toBe(3);
      const val = (img: typeof ax, x: number, y: number) => (img.image.data[y * img.image.width + x] * img.slope + img.intercept);
      expect(val(ax, 3, 2)).toBe(f(3, 2, 2));
      const cor = await readNiftiSlice(file, { axis: 1, slice: 1 });
      expect(cor.image).toMatchObject({ width: 5, height: 3 });
      expect(val(cor, 4, 2)).toBe(f(4, 1, 2));
      const sag = await readNiftiSlice(file, { axis: 0, slice: -1 });
      expect(val(sag, 1, 2)).toBe(f(4, 1, 2));
    }
    await expect(readNiftiSlice(a, { slice: 3 })).rejects.toThrow(/out of range/);
    await expect(readNiftiSlice(w('not.nii', 'hello'))).rejects.toThrow(/not a NIfTI/);
    // Through JSONL: a volume with a slice number.
    const ds = openJsonl(w('vol.jsonl', JSON.stringify({ image: 'vol.nii.gz', slice: 0, question: 'q', options: ['a', 'b'], answer: 0 })));
    expect((await ds.get(0)).image.bitDepth).toBe(16);
  });

  test('DICOM: rescale, signed pixels, window in stored units', async () => {
    // stored values i*10 - 50 (pixel i = 5y + x), rescale intercept -1024
    const file = w('ct.dcm', dicomBytes(5, 4, (x, y) => (5 * y + x) * 10 - 50 - 1024));
    const r = readDicom(file);
    expect(r.image).toMatchObject({ width: 5, height: 4, channels: 1, bitDepth: 16 });
    expect(r.image.data[7] * r.slope + r.intercept).toBe(7 * 10 - 50 - 1024);
    expect(r.image.defaultWindow!.center * r.slope + r.intercept).toBe(40);
    expect((await readImageFile(file)).width).toBe(5);
    expect(() => readDicom(w('fake.dcm', 'nope'))).toThrow(/not a readable DICOM/);
  });
});

describe('public VQA layouts', () => {
  test('VQA-RAD', async () => {
    await png('rad/VQA_RAD Image Folder/synpic1.jpg', 1, 50);
    w('rad/VQA_RAD Dataset Public.json', JSON.stringify([
      { qid: 1, image_name: 'synpic1.jpg', question: 'Is there a mass?', answer: 'Yes', answer_type: 'CLOSED', question_type: 'PRES', image_organ: 'CHEST' },
      { qid: 2, image_name: 'synpic1.jpg', question: 'Where?', answer: 'left lung', answer_type: 'OPEN', question_type: 'POS', image_organ: 'HEAD' },
    ]));
    const [a, b] = await all(openVqaRad(path.join(dir, 'rad')));
    expect(a).toMatchObject({ id: 'vqa-rad/1', options: ['yes', 'no'], answer: 0, modality: 'xray', questionType: 'closed:pres' });
    expect(b).toMatchObject({ options: [], answer: 'left lung' });
    expect(() => openVqaRad(path.join(dir, 'img'))).toThrow(/no .json annotation/);
  });
  test('SLAKE (English only by default)', async () => {
    await png('slake/imgs/xmlab0/source.jpg', 3, 80);
    w('slake/train.json', JSON.stringify([
      { qid: 7, img_name: 'xmlab0/source.jpg', question: 'Which organ?', answer: 'Lung', answer_type: 'OPEN', modality: 'X-Ray', content_type: 'Organ', q_lang: 'en' },
      { qid: 8, img_name: 'xmlab0/source.jpg', question: '哪个器官?', answer: '肺', answer_type: 'OPEN', modality: 'X-Ray', q_lang: 'zh' },
    ]));
    const items = await all(openSlake(path.join(dir, 'slake')));
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ id: 'slake/7', modality: 'xray', answer: 'Lung', questionType: 'open:organ' });
    expect(() => openSlake(path.join(dir, 'slake'), { split: 'test' })).toThrow(/test.json not found/);
  });
  test('PMC-VQA (CSV with quoted fields)', async () => {
    await png('pmc/images/PMC1_fig.jpg', 3, 10);
    w('pmc/train.csv', 'Figure_path,Question,Answer,Choice A,Choice B,Choice C,Choice D,Answer_label\nPMC1_fig.jpg,"What is shown, here?",B:MRI,A:CT," B:MRI",C:PET,"D:""US""",B\n');
    const [it] = await all(openPmcVqa(path.join(dir, 'pmc')));
    expect(it).toMatchObject({ question: 'What is shown, here?', options: ['CT', 'MRI', 'PET', '"US"'], answer: 1 });
    expect(parseCsv('a,b\n"x\ny",2\n')).toEqual([{ a: 'x\ny', b: '2' }]);
    expect(() => parseCsv('a\n"open', 'f.csv')).toThrow(/unterminated/);
  });
  test('OmniMedVQA', async () => {
    await png('omni/Images/ACRIMA/im1.png', 3, 90);
    w('omni/QA_information/Open-access/ACRIMA.json', JSON.stringify([
      { question_id: 'ACRIMA_0001', question_type: 'Disease Diagnosis', question: 'Is this glaucoma?', gt_answer: 'No', option_A: 'Yes', option_B: 'No', image_path: 'Images/ACRIMA/im1.png', modality_type: 'Fundus Photography' },
    ]));
    const ds = openOmniMedVqa(path.join(dir, 'omni'));
    const [it] = await all(ds);
    expect(it).toMatchObject({ id: 'omnimedvqa/ACRIMA_0001', options: ['Yes', 'No'], answer: 1, modality: 'fundus photography', questionType: 'disease diagnosis' });
    w('omni2/QA_information/Open-access/x.json', JSON.stringify([{ question_id: 'x', question: 'q', gt_answer: 'C', option_A: 'a', image_path: '../../etc/passwd' }]));
    expect(() => openOmniMedVqa(path.join(dir, 'omni2'))).toThrow(/none of the options/);
    // A loaded dataset runs in the env and passes the checker.
    const env = make('MedGym-Dataset-v0', { dataset: ds });
    expect(await checkEnv(env)).toEqual([]);
  });
});
