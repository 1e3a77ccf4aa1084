// Clients of `medgym serve-env` for the benchmarks (bench/env_server.ts, bench/env_server_soak.ts):
// the expert's scripted episodes, HTTP and WebSocket drivers of one session each, and a server
// child process on a free loopback port.
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import WebSocket from 'ws';
import { expertPolicy, make } from '../src/env';
import { makeCaches } from '../src/env/cache';
import { DEFAULT_ENV } from '../src/server/env_server';

const ROOT = path.resolve(__dirname, '..');

export const caches = makeCaches(256, 4096);
export const seedOf = (k: number): number => 1000 + k;

export interface Driver {
  reset(seed: number): Promise<void>;
  /** true when the episode ended */
  step(text: string): Promise<boolean>;
  close(): Promise<void>;
}

/** The expert's action texts for each session's episode (same seed → same episode, here and served). */
export async function scripts(sessions: number): Promise<string[][]> {
  return Promise.all(
    Array.from({ length: sessions }, async (_, k) => {
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

export function post(agent: http.Agent, port: number, route: string, body: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
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

export function httpDriver(agent: http.Agent, port: number): Promise<Driver> {
  let id: string | undefined;
  return Promise.resolve({
    reset: async (seed) => {
      id = (await post(agent, port, '/reset', id ? { seed, episode_id: id } : { seed })).episode_id;
    },
    step: async (text) => (await post(agent, port, '/step', { episode_id: id, action: { text } })).done as boolean,
    close: async () => void (id && (await post(agent, port, '/close', { episode_id: id }))),
  });
}

export async function wsDriver(port: number): Promise<Driver> {
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

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

export async function withServer<T>(workers: number, fn: (port: number, child: ChildProcess) => Promise<T>, args: string[] = []): Promise<T> {
  const port = await freePort();
  const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), ['src/cli/main.ts', 'serve-env', '--port', String(port), '--workers', String(workers), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MEDGYM_TOKEN: '' } });
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
    return await fn(port, child);
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
