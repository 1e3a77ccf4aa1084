// Load equality: 64 concurrent WebSocket sessions play scripted-expert episodes until 10,000 steps
// in all (or a time bound), a third each sending text, token ids and tools/call, half with images
// "blobs". Every observation's text, tokens, reward, done and truncated, and every view's sha256,
// must equal the same env driven in-process with the same seed and actions (views are compared by
// hash here; env_server.test.ts and env_server_tools.test.ts decode the PNGs).
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { expertPolicy, make, type Observation } from '../../src/env';
import { makeCaches } from '../../src/env/cache';
import { createEnvServer, type EnvServer } from '../../src/server/env_server';
import { toolCallText } from '../../src/server/tools_call';
import { encode } from '../../src/tokenizer';

const ENV = 'MedVista-Synth-Lesion-Visible-v0';
const SESSIONS = 64;
const TARGET_STEPS = 10_000;
const TIME_BOUND_MS = 30_000;
const SEEDS = 24;

let server: EnvServer | undefined;
afterAll(async () => {
  await server?.close();
});

const sha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');

interface Expected {
  text: string;
  tokens: number[];
  shas: string[];
  reward: number | null;
  done: boolean;
  truncated: boolean;
}
interface Script {
  seed: number;
  actions: string[];
  reset: Expected;
  steps: Expected[];
}

const expected = (o: Observation, reward: number | null, done: boolean, truncated: boolean): Expected => ({ text: o.text, tokens: o.tokens, shas: o.images.map((v) => sha(v.data)), reward, done, truncated });

/** The expert's actions for seed (an env that reveals the truth), then the same actions on a plain env. */
async function scriptFor(seed: number, caches: ReturnType<typeof makeCaches>): Promise<Script> {
  const teacher = make(ENV, { revealGroundTruth: true }, caches);
  const expert = expertPolicy();
  let { observation, info } = await teacher.reset({ seed });
  const actions: string[] = [];
  for (let k = 0; k < 8; k++) {
    const t = expert.act(observation, info);
    // Tool turns in tools/call's own text, so that all three transports send the same action.
    const m = /^<tool_call>(.*)<\/tool_call>$/s.exec(t);
    const c = m ? (JSON.parse(m[1]) as { name: string; arguments: unknown }) : undefined;
    actions.push(c ? toolCallText(c.name, c.arguments) : t);
    const r = await teacher.step(actions[k]);
    if (r.terminated || r.truncated) break;
    ({ observation, info } = r);
  }
  const env = make(ENV, {}, caches);
  const r0 = await env.reset({ seed });
  const steps: Expected[] = [];
  for (const a of actions) {
    const r = await env.step(a);
    steps.push(expected(r.observation, r.reward, r.terminated || r.truncated, r.truncated));
  }
  expect(steps.at(-1)!.done).toBe(true);
  return { seed, actions, reset: expected(r0.observation, null, false, false), steps };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function check(wire: any, want: Expected, where: string): void {
  const o = wire.observation;
  const got = { text: o.text, tokens: o.tokens, shas: o.images.map((im: { sha256: string }) => im.sha256), reward: wire.reward, done: wire.done, truncated: wire.metadata.truncated };
  if (JSON.stringify(got) !== JSON.stringify(want)) expect({ where, ...got }).toEqual({ where, ...want }); // toEqual only on a mismatch: it is slow
}

test(`${SESSIONS} WebSocket sessions, ${TARGET_STEPS} steps: every observation equals the in-process env`, async () => {
  const caches = makeCaches(SEEDS, 1024);
  const scripts: Script[] = [];
  for (let s = 0; s < SEEDS; s++) scripts.push(await scriptFor(1000 + s, caches));

  server = createEnvServer({ host: '127.0.0.1', maxSessions: SESSIONS });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (server.app.server.address() as AddressInfo).port;

  let total = 0;
  const t0 = Date.now();
  const stop = (): boolean => total >= TARGET_STEPS || Date.now() - t0 > TIME_BOUND_MS;

  const session = async (i: number): Promise<number> => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const waiters: ((m: any) => void)[] = [];
    ws.on('message', (d) => waiters.shift()?.(JSON.parse(d.toString())));
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const ask = (m: unknown): Promise<any> =>
      new Promise((r) => {
        waiters.push(r);
        ws.send(JSON.stringify(m));
      });
    const mode = i % 3; // 0 text, 1 token ids, 2 tools/call for tool turns
    const images = i % 2 ? 'blobs' : 'inline';
    let episodes = 0;
    try {
      for (let ep = 0; !stop(); ep++) {
        const sc = scripts[(i * 7 + ep) % SEEDS];
        const reset = await ask({ type: 'reset', data: { seed: sc.seed, options: { images } } });
        expect(reset.type).toBe('observation');
        check(reset.data, sc.reset, `session ${i} seed ${sc.seed} reset`);
        for (const [k, a] of sc.actions.entries()) {
          const call = mode === 2 ? /^<tool_call>(.*)<\/tool_call>$/s.exec(a) : null;
          const msg = call ? { type: 'tools/call', data: JSON.parse(call[1]) } : mode === 1 ? { type: 'step', data: { token_ids: encode(a) } } : { type: 'step', data: { text: a } };
          const r = await ask(msg);
          expect(r.type).toBe(call ? 'tools/call' : 'observation');
          check(r.data, sc.steps[k], `session ${i} seed ${sc.seed} step ${k}`);
          total++;
        }
        episodes++;
      }
    } finally {
      ws.close();
    }
    return episodes;
  };

  const episodes = (await Promise.all(Array.from({ length: SESSIONS }, (_, i) => session(i)))).reduce((a, b) => a + b, 0);
  const ms = Date.now() - t0;
  console.log(`load equality: ${total} steps, ${episodes} episodes over ${SESSIONS} WebSocket sessions in ${(ms / 1000).toFixed(1)} s (${Math.round((total / ms) * 1000)} steps/s)`);
  expect(total >= TARGET_STEPS || ms > TIME_BOUND_MS).toBe(true);
  expect(total).toBeGreaterThan(1000); // a time bound hit on a loaded machine still checks thousands of steps
  expect(server.metrics.steps).toBe(total);
}, 90_000);
