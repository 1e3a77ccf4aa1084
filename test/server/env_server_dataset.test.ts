// Datasets served by name: the operator declares NAME=PATH at start (opened once, as `medgym train
// --dataset` opens it), a reset names {"dataset": NAME}; an HTTP episode on it equals the same env
// driven in-process on the same items, and a client can never name a path.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expertPolicy, make, type StepResult } from '../../src/env';
import { makeCaches } from '../../src/env/cache';
import { serveEnvCommand } from '../../src/cli/serve_env';
import { openDataset } from '../../src/data/open';
import { DatasetItems } from '../../src/rollout';
import { parseDatasetFlag } from '../../src/server/datasets';
import { DATASET_ENV_ID, parseTrainConfig } from '../../src/train/config';
import { openRunItems } from '../../src/train/data';
import { createEnvServer } from '../../src/server/env_server';
import { encodeReset, encodeStep } from '../../src/server/observation';
import { brightnessRows, pngBytes, writeJsonl } from '../helpers/datasets';
import { connect, expectError, request, useServers } from './harness';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-serve-dataset-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));
const start = useServers();

// The repo's dataset fixture (test/helpers/datasets.ts, as test/train/dataset_e2e.test.ts): PNGs + data.jsonl.
let DATA: string;
beforeAll(async () => {
  const dir = path.join(TMP, 'bright');
  fs.mkdirSync(path.join(dir, 'img'), { recursive: true });
  for (let k = 0; k < 6; k++) fs.writeFileSync(path.join(dir, 'img', `${k}.png`), await pngBytes(48, 40, (x, y) => (x >= 8 && x < 24 && y >= 8 && y < 24 ? 40 + 100 * (k % 3) : 20 + ((x + y) % 7))));
  DATA = writeJsonl(dir, brightnessRows(6, (k) => `img/${k}.png`, (k) => (k % 2 ? undefined : [8, 8, 24, 24])));
});

const ENV = 'MedGym-Dataset-v0';

/** Scripted actions (a bad tool call, then the expert's turns) and the in-process episode on them, encoded as the server encodes. */
async function twin(seed: number, index: number) {
  const opened = await openDataset({ path: DATA });
  const caches = makeCaches(16, 64);
  const scripted = make(ENV, { dataset: opened.dataset, revealGroundTruth: true }, caches);
  const expert = expertPolicy();
  let { observation, info } = await scripted.reset({ seed, options: { index } });
  const texts = ['<tool_call>{"name": "zoom_in", "arguments": {"cell": "Z9"}}</tool_call>'];
  for (let k = 0; k < 8; k++) {
    const t = expert.act(observation, info);
    texts.push(t);
    const r = await scripted.step(t);
    if (r.terminated || r.truncated) break;
    ({ observation, info } = r);
  }
  const env = make(ENV, { dataset: opened.dataset }, makeCaches(16, 64));
  const reset = await encodeReset(await env.reset({ seed, options: { index } }), 'x');
  const steps = [];
  for (const t of texts) {
    const r: StepResult = await env.step(t);
    steps.push(await encodeStep(r));
    if (r.terminated || r.truncated) break;
  }
  return { texts, reset, steps };
}

const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const withoutId = ({ episode_id: _, ...rest }: any): unknown => rest;

describe('serve-env datasets', () => {
  test('an HTTP episode on a declared dataset equals the env in-process on the same items, seed and actions', async () => {
    const { port } = await start({ datasets: { bright: { path: DATA } } });
    const meta = await request(port, 'GET', '/metadata');
    expect(meta.body.datasets).toEqual(['bright']);
    expect(meta.text).not.toContain(DATA);
    for (const [seed, index] of [
      [3, 0],
      [5, 4],
    ]) {
      const want = await twin(seed, index);
      const r = await request(port, 'POST', '/reset', { dataset: 'bright', seed, options: { index } });
      expect(r.status).toBe(200);
      expect(withoutId(r.body)).toEqual(plain(withoutId(want.reset)));
      const id = r.body.episode_id;
      const state = await request(port, 'GET', `/state?episode_id=${id}`);
      expect(state.body).toMatchObject({ env: ENV, dataset: 'bright' });
      expect(want.steps.length).toBeGreaterThan(1);
      for (const [k, text] of want.texts.slice(0, want.steps.length).entries()) {
        const s = await request(port, 'POST', '/step', { episode_id: id, action: { text } });
        expect(s.status).toBe(200);
        expect(s.body).toEqual(plain(want.steps[k]));
      }
      expect(want.steps.at(-1)?.done).toBe(true);
    }
  });

  test('NAME:split serves one split: index i is the split\'s i-th item, the split medgym train makes of the dataset', async () => {
    const { port } = await start({ datasets: { bright: { path: DATA } } });
    const items = await openRunItems(parseTrainConfig({ env: { id: DATASET_ENV_ID, dataset: { path: DATA } } }));
    const splits = (items.source as DatasetItems).splitIndices;
    const meta = (await request(port, 'GET', '/metadata')).body;
    expect(meta.datasets).toEqual(['bright']);
    expect(meta.dataset_sizes).toEqual({ bright: { all: 6, train: splits.train.length, val: splits.val.length, test: splits.test.length } });
    expect(splits.train.length).toBeGreaterThan(1);
    for (const i of [0, splits.train.length - 1]) {
      const want = await twin(11, splits.train[i]);
      const r = await request(port, 'POST', '/reset', { dataset: 'bright:train', seed: 11, options: { index: i } });
      expect(withoutId(r.body)).toEqual(plain(withoutId(want.reset)));
      expect((await request(port, 'GET', `/state?episode_id=${r.body.episode_id}`)).body).toMatchObject({ dataset: 'bright:train' });
    }
    expectError(await request(port, 'POST', '/reset', { dataset: 'bright:train', options: { index: splits.train.length } }), 400, 'VALIDATION_ERROR', /index/);
    for (const empty of (['val', 'test'] as const).filter((k) => splits[k].length === 0)) {
      expectError(await request(port, 'POST', '/reset', { dataset: `bright:${empty}` }), 400, 'VALIDATION_ERROR', /unknown dataset/);
    }
    expectError(await request(port, 'POST', '/reset', { dataset: 'bright:dev' }), 400, 'VALIDATION_ERROR', /body\.dataset: .*:train, :val or :test/);
  });

  test('WebSocket resets name the dataset too, and may switch back to an env id', async () => {
    const { port } = await start({ datasets: { bright: { path: DATA, kind: 'jsonl' } } });
    const want = await twin(7, 2);
    const c = await connect(port);
    c.send({ type: 'reset', data: { dataset: 'bright', seed: 7, options: { index: 2 } } });
    const m = await c.next();
    expect(m.type).toBe('observation');
    expect(withoutId(m.data)).toEqual(plain(withoutId(want.reset)));
    c.send({ type: 'state' });
    expect((await c.next()).data).toMatchObject({ env: ENV, dataset: 'bright' });
    c.send({ type: 'reset', data: { env: 'MedVista-Synth-v0', seed: 1 } });
    expect((await c.next()).type).toBe('observation');
    c.send({ type: 'state' });
    const st = (await c.next()).data;
    expect(st.env).toBe('MedVista-Synth-v0');
    expect(st.dataset).toBeUndefined();
    await c.close();
  });

  test('an unknown dataset name is a 400 with did-you-mean and the declared names; a path is a 400', async () => {
    const { port, server } = await start({ datasets: { bright: { path: DATA }, other: { path: DATA } } });
    expectError(await request(port, 'POST', '/reset', { dataset: 'brigth' }), 400, 'VALIDATION_ERROR', /unknown dataset "brigth".*bright.*declared: bright, other/);
    for (const p of ['../etc/passwd', '/etc/passwd', DATA, 'bright/../x', '..', 'C:\\x']) {
      expectError(await request(port, 'POST', '/reset', { dataset: p }), 400, 'VALIDATION_ERROR', /body\.dataset: .*never a path/);
    }
    expect(server.sessions.size).toBe(0); // failed first resets hold no slot
    // The dataset env without a dataset is a 400 naming the declared ones, not a 500.
    expectError(await request(port, 'POST', '/reset', { env: ENV }), 400, 'VALIDATION_ERROR', /dataset.*declared: bright, other/);
    const none = await start();
    expectError(await request(none.port, 'POST', '/reset', { dataset: 'bright' }), 400, 'VALIDATION_ERROR', /declares none/);
    expect((await request(none.port, 'GET', '/metadata')).body.datasets).toEqual([]);
  });

  test('bad declarations fail before listening, naming the flag and the file', async () => {
    expect(() => parseDatasetFlag('bright')).toThrow(/NAME=PATH\[:KIND\] for --dataset/);
    expect(() => parseDatasetFlag('=x.jsonl')).toThrow(/NAME=PATH/);
    expect(() => parseDatasetFlag('b=x.jsonl:nope')).toThrow(/--dataset b: unknown kind "nope"; kinds: jsonl/);
    expect(() => parseDatasetFlag('../b=x.jsonl')).toThrow(/--dataset: dataset name "..\/b"/);
    expect(parseDatasetFlag('b=/d/data.jsonl:jsonl')).toEqual(['b', { path: '/d/data.jsonl', kind: 'jsonl' }]);
    expect(parseDatasetFlag('b=/d/data.jsonl')).toEqual(['b', { path: '/d/data.jsonl' }]);
    expect(() => createEnvServer({ datasets: { 'a/b': { path: DATA } } })).toThrow(/dataset name "a\/b"/);
    const missing = path.join(TMP, 'missing', 'data.jsonl');
    await expect(serveEnvCommand({ port: '0', dataset: [`gone=${missing}`] })).rejects.toThrow(new RegExp(`--dataset: dataset gone \\(${missing.replace(/[.\\/]/g, '\\$&')}\\)`));
    await expect(serveEnvCommand({ port: '0', dataset: [`b=${DATA}`, `b=${DATA}`] })).rejects.toThrow(/--dataset b: declared twice/);
    const s = createEnvServer({ datasets: { gone: { path: missing } } });
    await expect(s.app.listen({ host: '127.0.0.1', port: 0 })).rejects.toThrow(/datasets: dataset gone/);
    expect(s.app.server.listening).toBe(false);
    await s.close().catch(() => undefined);
  });
});
