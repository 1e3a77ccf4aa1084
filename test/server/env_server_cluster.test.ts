// `medgym serve-env --workers 2` as a child process (127.0.0.1, a free port): WebSocket sessions
// run episodes on both workers; a worker killed with SIGKILL takes only its own sessions down, the
// primary restarts it, and SIGTERM to the primary stops everything. The whole process group is
// SIGKILLed afterwards whatever happened.
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import WebSocket from 'ws';

const ROOT = path.resolve(__dirname, '../..');
const ZOOM = '<tool_call>{"name": "zoom_in", "arguments": {"cell": "B2"}}</tool_call>';
const ANSWER = '<answer>A</answer>';

let child: ChildProcess | undefined;
const sockets: WebSocket[] = [];

afterAll(() => {
  for (const ws of sockets) ws.terminate();
  // The child leads its own process group (detached): tsx, the primary and the workers go together.
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

/** Resolves with the first match of `re` in the growing text `read()`, or rejects after `ms`. */
async function waitFor(read: () => string, re: RegExp, ms: number, what: string): Promise<RegExpMatchArray> {
  const t0 = Date.now();
  for (;;) {
    const m = read().match(re);
    if (m) return m;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}; output so far:\n${read()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function metadata(port: number): Promise<{ pid: number; worker: number; workers: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metadata', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
      })
      .on('error', reject);
  });
}

/** One request on its own TCP connection (agent: false), so that the primary may hand it to either worker. */
function call(port: number, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string; json: any; headers: http.IncomingHttpHeaders }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false, headers: { ...(data ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** A whole HTTP episode, every request on a new connection: the owner worker answers wherever it lands. */
async function httpEpisode(port: number, seed: number, episodeId?: string): Promise<string> {
  const r = await call(port, 'POST', '/reset', { seed, ...(episodeId ? { episode_id: episodeId } : {}) });
  expect(r.status).toBe(200);
  const id = r.json.episode_id as string;
  if (episodeId) expect(id).toBe(episodeId);
  const z = await call(port, 'POST', '/step', { episode_id: id, action: { text: ZOOM } });
  expect([z.status, z.json.done]).toEqual([200, false]);
  const st = await call(port, 'GET', `/state?episode_id=${id}`);
  expect([st.status, st.json.step_count]).toEqual([200, 1]);
  const a = await call(port, 'POST', '/step', { episode_id: id, action: { text: ANSWER } });
  expect([a.status, a.json.done]).toEqual([200, true]);
  return id;
}

const counter = (metrics: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)![1]);

type Reply = { type: string; data: any } | 'closed'; // eslint-disable-line @typescript-eslint/no-explicit-any

async function connect(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  sockets.push(ws);
  const inbox: Reply[] = [];
  const waiters: ((m: Reply) => void)[] = [];
  const deliver = (m: Reply): void => {
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  };
  ws.on('message', (d) => deliver(JSON.parse(d.toString())));
  ws.on('close', () => {
    for (let k = 0; k < 4; k++) deliver('closed');
  });
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = (): Promise<Reply> => (inbox.length ? Promise.resolve(inbox.shift()!) : new Promise((r) => waiters.push(r)));
  return {
    ws,
    /** Sends and waits for the answer, or 'closed' if the socket closes first. */
    ask: (m: unknown): Promise<Reply> => {
      if (ws.readyState !== ws.OPEN) return Promise.resolve('closed');
      ws.send(JSON.stringify(m), () => undefined);
      return next();
    },
  };
}

async function episode(c: Awaited<ReturnType<typeof connect>>, seed: number): Promise<void> {
  const r = await c.ask({ type: 'reset', data: { seed } });
  expect(r !== 'closed' && r.type).toBe('observation');
  const z = await c.ask({ type: 'step', data: { text: ZOOM } });
  expect(z !== 'closed' && z.type === 'observation' && z.data.done).toBe(false);
  const a = await c.ask({ type: 'step', data: { text: ANSWER } });
  expect(a !== 'closed' && a.type === 'observation' && a.data.done).toBe(true);
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code !== 'ESRCH';
  }
};

test('--workers 2: sessions on both workers, a killed worker is restarted, SIGTERM stops all', async () => {
  const port = await freePort();
  let out = '';
  let err = '';
  child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), ['src/cli/main.ts', 'serve-env', '--workers', '2', '--port', String(port)], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MEDGYM_TOKEN: '' },
  });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child!.once('exit', (code, signal) => r({ code, signal })));

  await waitFor(() => out, new RegExp(`http://127\\.0\\.0\\.1:${port} \\(env [^,]+, 2 workers\\)`), 30_000, 'the server URL');
  const pidOf = (k: number): number => Number(err.match(new RegExp(`worker ${k} pid (\\d+) listening`))![1]);
  const [pid0, pid1] = [pidOf(0), pidOf(1)];
  expect(pid0).not.toBe(pid1);

  // 8 sessions, full episodes, then a fresh episode each so that every one has a step to take.
  const clients = await Promise.all(Array.from({ length: 8 }, () => connect(port)));
  await Promise.all(clients.map((c, k) => episode(c, 10 + k)));
  for (const [k, c] of clients.entries()) expect(await c.ask({ type: 'reset', data: { seed: 20 + k } })).toMatchObject({ type: 'observation' });

  // Plain HTTP, one connection per request: server-made ids (w<k>.uuid) and client-chosen ones
  // (owner = hash mod 2) are forwarded to their owner from whichever worker a request lands on.
  const httpIds = await Promise.all([0, 1, 2, 3].map((k) => httpEpisode(port, 30 + k, k % 2 ? `client-chosen-${k}` : undefined)));
  expect(httpIds.filter((id) => /^w[01]\./.test(id))).toHaveLength(2);
  // /metrics sums both workers: 8 + 8 WebSocket resets and 4 HTTP ones; 8 × 2 + 4 × 2 steps.
  const m = (await call(port, 'GET', '/metrics')).text;
  expect([counter(m, 'medgym_processes'), counter(m, 'medgym_resets_total'), counter(m, 'medgym_steps_total')]).toEqual([2, 20, 24]);
  const own = (await call(port, 'GET', '/metrics?scope=worker')).text;
  expect(counter(own, 'medgym_processes')).toBe(1);
  expect(counter(own, 'medgym_steps_total')).toBeLessThan(24);
  // An MCP session too: initialize lands on one worker, its calls on either.
  const init = await call(port, 'POST', '/mcp', { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} });
  const sid = init.headers['mcp-session-id'] as string;
  expect(sid).toMatch(/^w[01]\./);
  const mcp = (id: number, name: string, args: unknown) => call(port, 'POST', '/mcp', { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, { 'mcp-session-id': sid });
  expect((await mcp(2, 'reset', { seed: 3 })).json.result.isError).toBe(false);
  expect((await mcp(3, 'zoom_in', { cell: 'B2' })).json.result.isError).toBe(false);
  expect((await mcp(4, 'answer', { answer: 'A' })).json.result.structuredContent.done).toBe(true);
  const w0 = await call(port, 'POST', '/reset', { seed: 50, episode_id: 'w0.held-by-worker-0' });
  expect(w0.status).toBe(200);

  process.kill(pid0, 'SIGKILL');
  await waitFor(() => err, /worker 0 pid \d+ died \(SIGKILL\); restarting/, 10_000, 'the primary to see the death');
  // The dead worker's sockets close; the others' next step succeeds.
  const replies = await Promise.all(clients.map((c) => c.ask({ type: 'step', data: { text: ANSWER } })));
  const survived = replies.filter((r) => r !== 'closed');
  expect(survived.length).toBeGreaterThan(0);
  expect(survived.length).toBeLessThan(8); // connections are spread round-robin: some were on worker 0
  for (const r of survived) expect(r).toMatchObject({ type: 'observation', data: { done: true } });
  // worker 0's HTTP session died with it: a 404 that says so, from either worker.
  const gone = await call(port, 'POST', '/step', { episode_id: 'w0.held-by-worker-0', action: { text: ANSWER } });
  expect(gone.status).toBe(404);
  expect(gone.json.error.code).toBe('NOT_FOUND');

  // The primary forks a new worker 0; fresh connections reach it (round-robin over both workers).
  await waitFor(() => err, /worker 0 pid \d+ listening[\s\S]*worker 0 pid \d+ listening/, 25_000, 'the restarted worker');
  const starts = [...err.matchAll(/worker 0 pid (\d+) listening/g)].map((m) => Number(m[1]));
  expect(starts).toHaveLength(2);
  const pidNew = starts[1];
  expect([starts[0], pidNew === pid0]).toEqual([pid0, false]);
  expect(alive(pid0)).toBe(false);
  const seen = new Set<number>();
  for (let k = 0; k < 8 && !seen.has(pidNew); k++) seen.add((await metadata(port)).pid);
  expect(seen.has(pidNew)).toBe(true);
  const fresh = await Promise.all([connect(port), connect(port)]);
  await Promise.all(fresh.map((c, k) => episode(c, 40 + k)));

  // SIGTERM to the primary (tsx relays it): workers close their sessions and everything exits.
  const t0 = Date.now();
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 8000)))]);
  clearTimeout(timer);
  expect(done).toEqual({ code: 0, signal: null });
  expect(Date.now() - t0).toBeLessThan(8000);
  for (let k = 0; k < 40 && (alive(pid1) || alive(pidNew)); k++) await new Promise((r) => setTimeout(r, 50));
  expect([alive(pid1), alive(pidNew)]).toEqual([false, false]);
}, 90_000);
