// What the env-server tests share: in-process servers on 127.0.0.1, port 0, always closed; raw
// HTTP requests (node:http, so odd paths and bodies reach the server unnormalized); and the runner
// of the Python suites (/usr/bin/python3 on python/medgym_client, asynchronously: a sync spawn would
// block the event loop that serves it).
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import WebSocket from 'ws';
import type { MedGymEnv, StepResult } from '../../src/env';
import { createEnvServer, type EnvServer, type EnvServerOptions } from '../../src/server/env_server';

export interface Started {
  server: EnvServer;
  port: number;
  url: string;
}

/** A starter of servers that are closed after each test (`each`) or after the file (`all`). */
export function useServers(scope: 'each' | 'all' = 'each'): (opts?: EnvServerOptions) => Promise<Started> {
  const open: EnvServer[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  };
  if (scope === 'each') afterEach(closeAll);
  else afterAll(closeAll);
  return async (opts = {}) => {
    const server = createEnvServer({ host: '127.0.0.1', ...opts });
    open.push(server);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (server.app.server.address() as AddressInfo).port;
    return { server, port, url: `http://127.0.0.1:${port}` };
  };
}

export interface Res {
  status: number;
  /** content-type ('' when none). */
  type: string;
  raw: Buffer;
  text: string;
  /** The JSON body, or the text when it is not JSON. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: http.IncomingHttpHeaders;
}

/** One request; a string body is sent as it is (malformed JSON), anything else as JSON. */
export function request(port: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> {
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent: false, headers: { ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // left as text: the assertion on it will say what came back
          }
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), raw, text, body: parsed, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A 4xx/5xx JSON error of the server: status, code, a message (matching `message` when given). */
export function expectError(r: Res, status: number, code: string, message?: RegExp): void {
  expect({ status: r.status, code: r.body?.error?.code }).toEqual({ status, code });
  expect(typeof r.body.error.message).toBe('string');
  if (message) expect(r.body.error.message).toMatch(message);
}

/** A WebSocket client of /ws that queues incoming messages (next() takes them in order). */
export async function connect(port: number, headers: Record<string, string> = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers });
  const inbox: any[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  const waiters: ((m: unknown) => void)[] = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    /** A string is sent as it is (malformed JSON), anything else as JSON. */
    send: (m: unknown) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    next: (): Promise<any> => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r))),
    close: () => new Promise<void>((r) => (ws.readyState === ws.CLOSED ? r() : (ws.once('close', () => r()), ws.close()))),
  };
}

export const PYTHON = '/usr/bin/python3';
const ROOT = path.resolve(__dirname, '../..');
export const PY_PKG = path.join(ROOT, 'python', 'medgym_client');
const PY_TIMEOUT_MS = 45_000;

export interface PythonRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** /usr/bin/python3 `args` with the client package on PYTHONPATH (no __pycache__ left behind). */
export function runPython(args: string[], env: Record<string, string> = {}): Promise<PythonRun> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      args,
      { cwd: ROOT, timeout: PY_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20, env: { ...process.env, PYTHONPATH: PY_PKG, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', ...env } },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
        resolve({ code, signal: e?.signal ?? null, output: `${stdout}${stderr}${e && typeof e.code === 'string' ? `\n${e.message}` : ''}` });
      },
    );
  });
}

/** Fails with the apt packages to install when python3, requests or websocket-client is missing. */
export async function requirePython(): Promise<void> {
  const r = await runPython(['-B', '-c', 'import sys, requests, websocket; assert sys.version_info >= (3, 9), sys.version']);
  if (r.code !== 0) {
    throw new Error(`${PYTHON} with the modules requests and websocket (websocket-client) is needed: apt-get install -y python3 python3-requests python3-websocket (.ci/run does this).\n${r.output}`);
  }
}

/** Runs one Python unittest file; fails on a non-zero exit, a missing OK or any skipped test. */
export async function expectPythonSuite(script: string, env: Record<string, string>): Promise<void> {
  const r = await runPython(['-B', script], env);
  if (process.env.MEDGYM_PY_VERBOSE) console.log(r.output);
  if (r.code !== 0 || !/\nOK\b/.test(r.output) || /skipped/.test(r.output)) {
    throw new Error(`python tests failed (exit ${r.code}${r.signal ? `, signal ${r.signal}` : ''}; timeout ${PY_TIMEOUT_MS} ms):\n${r.output}`);
  }
}

/** The in-process twin of a served episode: `env` reset with `args`, then `texts` stepped until the episode ends. */
export async function playInProcess(env: MedGymEnv, args: Parameters<MedGymEnv['reset']>[0], texts: string[]) {
  const reset = await env.reset(args);
  const steps: StepResult[] = [];
  for (const t of texts) {
    const r = await env.step(t);
    steps.push(r);
    if (r.terminated || r.truncated) break;
  }
  return { reset, steps };
}
