// Env server soak: one `medgym serve-env` process under 64 sessions for SOAK_SECONDS (default 600),
// half WebSocket sockets that live the whole run, half HTTP clients that create a new session per
// episode and close it (the session table's churn). Each session replays a scripted-expert episode
// at a capped rate (SOAK_RATE steps/s over all sessions, default 300: a steady load that leaves the
// machine usable), and the server's RSS (/proc/<pid>/status VmRSS of the process that answers
// /metadata) is sampled every 10 s. A leak shows as RSS that keeps climbing after the warm-up
// minute. Not part of the test suite: npx tsx bench/env_server_soak.ts
import * as fs from 'node:fs';
import * as http from 'node:http';
import { DEFAULT_ENV } from '../src/server/env_server';
import { post, scripts, seedOf, withServer, wsDriver, type Driver } from './env_server_clients';
import { fmt, machineLine } from './harness';

const SESSIONS = 64;
const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const RATE = Number(process.env.SOAK_RATE ?? 300);
const SAMPLE_MS = 10_000;

const rssMiB = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};

function getJson(port: number, route: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: route, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
      })
      .on('error', reject);
  });
}

/** An HTTP driver that opens a new session for every episode and closes it after. */
function churningHttp(agent: http.Agent, port: number): Driver {
  let id: string | undefined;
  return {
    reset: async (seed) => {
      if (id) await post(agent, port, '/close', { episode_id: id });
      id = (await post(agent, port, '/reset', { seed })).episode_id;
    },
    step: async (text) => (await post(agent, port, '/step', { episode_id: id, action: { text } })).done as boolean,
    close: async () => void (id && (await post(agent, port, '/close', { episode_id: id }))),
  };
}

async function main(): Promise<void> {
  const texts = await scripts(SESSIONS);
  await withServer(1, async (port) => {
    const { pid } = (await getJson(port, '/metadata')) as { pid: number };
    const agent = new http.Agent({ keepAlive: true, maxSockets: SESSIONS });
    const drivers: Driver[] = await Promise.all(texts.map((_, k) => (k % 2 ? wsDriver(port) : Promise.resolve(churningHttp(agent, port)))));
    const samples: { t: number; rss: number; steps: number; sessions: number }[] = [];
    let steps = 0;
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    const gap = (SESSIONS / RATE) * 1000; // each session's pause between steps, for RATE in all
    const sample = async (): Promise<void> => {
      const meta = (await getJson(port, '/metadata')) as { sessions: { active: number } };
      samples.push({ t: (performance.now() - t0) / 1000, rss: rssMiB(pid), steps, sessions: meta.sessions.active });
      process.stderr.write(`t=${fmt(samples.at(-1)!.t)} s rss=${fmt(samples.at(-1)!.rss)} MiB steps=${steps}\n`);
    };
    await sample();
    const timer = setInterval(() => void sample(), SAMPLE_MS);
    await Promise.all(
      drivers.map(async (d, k) => {
        await new Promise((r) => setTimeout(r, (k * gap) / SESSIONS)); // spread the sessions' phases
        while (performance.now() < end) {
          await d.reset(seedOf(k));
          for (const t of texts[k]) {
            const done = await d.step(t);
            steps++;
            await new Promise((r) => setTimeout(r, gap));
            if (done) break;
          }
        }
      }),
    );
    clearInterval(timer);
    await sample();
    await Promise.all(drivers.map((d) => d.close()));
    agent.destroy();

    const warm = samples.find((s) => s.t >= 60) ?? samples[0];
    const last = samples.at(-1)!;
    const peak = Math.max(...samples.map((s) => s.rss));
    console.log(`\n${machineLine()}; env ${DEFAULT_ENV}; ${SESSIONS} sessions (32 WebSocket, 32 HTTP opening a session per episode), ${RATE} steps/s cap, ${SECONDS} s\n`);
    console.log('| t (s) | RSS (MiB) | steps | live sessions |');
    console.log('|---|---|---|---|');
    for (const s of samples.filter((_, i) => i % 6 === 0 || i === samples.length - 1)) console.log(`| ${fmt(s.t)} | ${fmt(s.rss)} | ${s.steps} | ${s.sessions} |`);
    console.log(`\nsteps ${last.steps} (${fmt(last.steps / last.t)}/s); RSS after the first minute ${fmt(warm.rss)} MiB, at the end ${fmt(last.rss)} MiB (${fmt(last.rss - warm.rss)} MiB, ${fmt(((last.rss - warm.rss) / Math.max(1, last.steps - warm.steps)) * 1024 * 1024)} bytes per step since), peak ${fmt(peak)} MiB`);
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
