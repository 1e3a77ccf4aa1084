// Env server load: 64 concurrent sessions on loopback, each replaying a scripted-expert episode
// (window/zoom tool calls, then the answer) over and over; rows: the env in-process (env.step, the
// ceiling), one `medgym serve-env` process over HTTP and over WebSocket, and `--workers 2` over
// WebSocket. Each row stops at MAX_STEPS steps or MAX_SECONDS, whichever comes first; steps/s is
// steps over the row's wall time (the resets between episodes included), latencies are per step as
// the client sees them. Not part of the test suite: npx tsx bench/env_server.ts
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import WebSocket from 'ws';
import { expertPolicy, make } from '../src/env';
import { makeCaches } from '../src/env/cache';
import { DEFAULT_ENV } from '../src/server/env_server';
import { fmt, machineLine } from './harness';

const SESSIONS = 64;
const MAX_STEPS = 8000;
const MAX_SECONDS = 15; // per row; four rows stay under a minute
const ROOT = path.resolve(__dirname, '..');

interface Driver {
  reset(seed: number): Promise<void>;
  /** true when the episode ended */
  step(text: string): Promise<boolean>;
  close(): Promise<void>;
}

interface Row {
  name: string;
  steps: number;
  seconds: number;
  p50: number;
  p99: number;
}

const caches = makeCaches(256, 4096);
const seedOf = (k: number): number => 1000 + k;

/** The expert's action texts for each session's episode (same seed → same episode, here and served). */
async function scripts(): Promise<string[][]> {
  return Promise.all(
    Array.from({ length: SESSIONS }, async (_, k) => {
      const env = make(DEFAULT_ENV, { revealGroundTruth: true }, caches);
      const expert = expertPolicy();
      let { observation, info } = await env.reset({ seed: seedOf(k) });
      const texts: string[] = [];
      for (let t = 0; t < 8; t++) {
        const a = expert.act(observation, info);
        texts.push(a);
        const r = await env.step(a);
        if (r.terminated || r.truncated) return texts;
        ({ observation, info } = r);
      }
      throw new Error(`expert episode of seed ${seedOf(k)} did not end in 8 steps`);
    }),
  );
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function drive(name: string, texts: string[][], makeDriver: (k: number) => Promise<Driver>): Promise<Row> {
  const drivers = await Promise.all(texts.map((_, k) => makeDriver(k)));
  const episode = async (k: number, onStep?: (ms: number) => boolean): Promise<boolean> => {
    await drivers[k].reset(seedOf(k));
    for (const t of texts[k]) {
      const t0 = performance.now();
      const done = await drivers[k].step(t);
      if (onStep && !onStep(performance.now() - t0)) return false;
      if (done) return true;
    }
    throw new Error(`${name}: session ${k} did not end its episode`);
  };
  await Promise.all(texts.map((_, k) => episode(k))); // warm-up: items generated, views cached, JIT warm
  const lat: number[] = [];
  const t0 = performance.now();
  const deadline = t0 + MAX_SECONDS * 1000;
  const take = (ms: number): boolean => {
    lat.push(ms);
    return lat.length < MAX_STEPS && performance.now() < deadline;
  };
  await Promise.all(
    texts.map(async (_, k) => {
      while (lat.length < MAX_STEPS && performance.now() < deadline) if (!(await episode(k, take))) return;
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(drivers.map((d) => d.close()));
  lat.sort((a, b) => a - b);
  return { name, steps: lat.length, seconds, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99) };
}

// ---- drivers --------------------------------------------------------------------------------

function inProcess(): Promise<Driver> {
  const env = make(DEFAULT_ENV, {}, caches);
  return Promise.resolve({
    reset: async (seed) => void (await env.reset({ seed })),
    step: async (text) => {
      const r = await env.step(text);
      return r.terminated || r.truncated;
    },
    close: async () => env.close(),
  });
}

function post(agent: http.Agent, port: number, route: string, body: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: route, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const j = JSON.parse(Buffer.concat(chunks).toString());
        if (res.statusCode !== 200) reject(new Error(`${route}: ${res.statusCode} ${JSON.stringify(j.error)}`));
        else resolve(j);
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function httpDriver(agent: http.Agent, port: number): Promise<Driver> {
  let id: string | undefined;
  return Promise.resolve({
    reset: async (seed) => {
      id = (await post(agent, port, '/reset', id ? { seed, episode_id: id } : { seed })).episode_id;
    },
    step: async (text) => (await post(agent, port, '/step', { episode_id: id, action: { text } })).done as boolean,
    close: async () => void (id && (await post(agent, port, '/close', { episode_id: id }))),
  });
}

async function wsDriver(port: number): Promise<Driver> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let waiting: ((m: any) => void) | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
  ws.on('message', (d) => waiting?.(JSON.parse(d.toString())));
  const ask = (m: unknown): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
    new Promise((resolve, reject) => {
      waiting = (r) => (r.type === 'error' ? reject(new Error(JSON.stringify(r.data))) : resolve(r.data));
      ws.send(JSON.stringify(m));
    });
  return {
    reset: async (seed) => void (await ask({ type: 'reset', data: { seed } })),
    step: async (text) => (await ask({ type: 'step', data: { text } })).done as boolean,
    close: () => new Promise((r) => (ws.once('close', () => r()), ws.close())),
  };
}

// ---- server processes -----------------------------------------------------------------------

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

async function withServer<T>(workers: number, fn: (port: number) => Promise<T>): Promise<T> {
  const port = await freePort();
  const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), ['src/cli/main.ts', 'serve-env', '--port', String(port), '--workers', String(workers)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MEDGYM_TOKEN: '' } });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server did not start in 60 s: ${out}`)), 60_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('medgym env server on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${out}`)));
    });
    return await fn(port);
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const texts = await scripts();
  const perEpisode = texts.reduce((s, t) => s + t.length, 0) / texts.length;
  const rows: Row[] = [];
  rows.push(await drive('in-process env.step (64 envs, one loop)', texts, () => inProcess()));
  rows.push(
    await withServer(1, async (port) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: SESSIONS });
      try {
        return await drive('1 server process, HTTP (keep-alive)', texts, () => httpDriver(agent, port));
      } finally {
        agent.destroy();
      }
    }),
  );
  rows.push(await withServer(1, (port) => drive('1 server process, WebSocket', texts, () => wsDriver(port))));
  rows.push(await withServer(2, (port) => drive('`--workers 2`, WebSocket', texts, () => wsDriver(port))));

  console.log(`\n${machineLine()}; ${SESSIONS} sessions, scripted expert (${fmt(perEpisode)} steps/episode), env ${DEFAULT_ENV}\n`);
  console.log('| setup | steps | s | steps/s | p50 step ms | p99 step ms |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${r.steps} | ${fmt(r.seconds)} | ${fmt(r.steps / r.seconds)} | ${fmt(r.p50)} | ${fmt(r.p99)} |`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
