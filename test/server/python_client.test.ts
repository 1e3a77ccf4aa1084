// The Python client (python/medgym_client) against the env server: two servers start in-process on
// 127.0.0.1 port 0 (one open, one with a token), and /usr/bin/python3 runs the client's unittest
// file against them. The child is async (execFile): a sync spawn would block the event loop that
// serves it. python3-requests and python3-websocket are CI's (.ci/run installs them).
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { createEnvServer, type EnvServer } from '../../src/server/env_server';

const PYTHON = '/usr/bin/python3';
const ROOT = path.resolve(__dirname, '../..');
const PKG = path.join(ROOT, 'python', 'medgym_client');
const SCRIPT = path.join(PKG, 'tests', 'test_client.py');
const TIMEOUT_MS = 45_000;
const TOKEN = 'py-client-token';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function run(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      args,
      // -B and PYTHONDONTWRITEBYTECODE: no __pycache__ left in the checkout.
      { cwd: ROOT, timeout: TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20, env: { ...process.env, PYTHONPATH: PKG, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', ...env } },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
        resolve({ code, signal: e?.signal ?? null, output: `${stdout}${stderr}${e && typeof e.code === 'string' ? `\n${e.message}` : ''}` });
      },
    );
  });
}

const open: EnvServer[] = [];
afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function start(token?: string): Promise<string> {
  const server = createEnvServer({ host: '127.0.0.1', token });
  open.push(server);
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
}

describe('python client (python/medgym_client)', () => {
  test('python3 with requests and websocket-client is installed', async () => {
    const r = await run(['-B', '-c', 'import sys, requests, websocket; assert sys.version_info >= (3, 9), sys.version'], {});
    if (r.code !== 0) {
      throw new Error(`${PYTHON} with the modules requests and websocket (websocket-client) is needed: apt-get install -y python3 python3-requests python3-websocket (.ci/run does this).\n${r.output}`);
    }
  });

  test('the unittest suite passes against live servers (HTTP, WebSocket, async, token, errors)', async () => {
    const [url, tokenUrl] = await Promise.all([start(), start(TOKEN)]);
    const r = await run(['-B', SCRIPT], { MEDGYM_URL: url, MEDGYM_TOKEN_URL: tokenUrl, MEDGYM_TOKEN: TOKEN });
    if (process.env.MEDGYM_PY_VERBOSE) console.log(r.output);
    if (r.code !== 0 || !/\nOK\b/.test(r.output) || /skipped/.test(r.output)) {
      throw new Error(`python tests failed (exit ${r.code}${r.signal ? `, signal ${r.signal}` : ''}; timeout ${TIMEOUT_MS} ms):\n${r.output}`);
    }
  });
});
