// Env server load: 64 concurrent sessions on loopback, each replaying a scripted-expert episode
// (window/zoom tool calls, then the answer) over and over; rows: the env in-process (env.step, the
// ceiling), one `medgym serve-env` process over HTTP and over WebSocket, and `--workers 2` over
// WebSocket and over HTTP (requests forwarded between workers to their session's owner). Each row stops at MAX_STEPS steps or MAX_SECONDS, whichever comes first; steps/s is
// steps over the row's wall time (the resets between episodes included), latencies are per step as
// the client sees them. Not part of the test suite: npx tsx bench/env_server.ts
import * as http from 'node:http';
import { make } from '../src/env';
import { DEFAULT_ENV } from '../src/server/env_server';
import { caches, httpDriver, scripts, seedOf, withServer, wsDriver, type Driver } from './env_server_clients';
import { fmt, machineLine } from './harness';

const SESSIONS = 64;
const MAX_STEPS = 8000;
const MAX_SECONDS = 15; // per row; four rows stay under a minute

interface Row {
  name: string;
  steps: number;
  seconds: number;
  p50: number;
  p99: number;
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

// ---- server processes -----------------------------------------------------------------------

async function main(): Promise<void> {
  const texts = await scripts(SESSIONS);
  const perEpisode = texts.reduce((s, t) => s + t.length, 0) / texts.length;
  const rows: Row[] = [];
  rows.push(await drive('in-process env.step (64 envs, one loop)', texts, () => inProcess()));
  /** HTTP sessions over a keep-alive pool of `sockets` connections (a request may go out on any of them). */
  const httpRow = (workers: number, name: string, sockets: number) =>
    withServer(workers, async (port) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
      try {
        return await drive(name, texts, () => httpDriver(agent, port));
      } finally {
        agent.destroy();
      }
    });
  rows.push(await httpRow(1, '1 server process, HTTP (keep-alive)', SESSIONS));
  rows.push(await withServer(1, (port) => drive('1 server process, WebSocket', texts, () => wsDriver(port))));
  rows.push(await withServer(2, (port) => drive('`--workers 2`, WebSocket', texts, () => wsDriver(port))));
  // Sessions and connections are not tied: a step lands on whichever worker holds its connection and
  // is forwarded to the session's owner when that is the other one (src/server/affinity.ts).
  rows.push(await httpRow(2, '`--workers 2`, HTTP (keep-alive pool, forwarded to the owner)', SESSIONS));

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
