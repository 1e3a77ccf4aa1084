// The trainer adapters (python/medgym_client/medgym_client/adapters: TRL environment_factory, verl
// AgentLoop, SkyRL BaseTextEnv) against the env server: a server starts in-process on 127.0.0.1
// port 0 and /usr/bin/python3 runs tests/test_adapters.py, which drives each adapter the way its
// trainer does (none of trl / verl / skyrl_gym is installed). The child is async (execFile): a sync
// spawn would block the event loop that serves it.
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { createEnvServer, type EnvServer } from '../../src/server/env_server';

const PYTHON = '/usr/bin/python3';
const ROOT = path.resolve(__dirname, '../..');
const PKG = path.join(ROOT, 'python', 'medgym_client');
const SCRIPT = path.join(PKG, 'tests', 'test_adapters.py');
const TIMEOUT_MS = 45_000;

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

async function start(): Promise<string> {
  const server = createEnvServer({ host: '127.0.0.1' });
  open.push(server);
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
}

describe('python trainer adapters (medgym_client.adapters)', () => {
  test('python3 with requests and websocket-client is installed', async () => {
    const r = await run(['-B', '-c', 'import sys, requests, websocket; assert sys.version_info >= (3, 9), sys.version'], {});
    if (r.code !== 0) {
      throw new Error(`${PYTHON} with the modules requests and websocket (websocket-client) is needed: apt-get install -y python3 python3-requests python3-websocket (.ci/run does this; python3-pil adds the image tests).\n${r.output}`);
    }
  });

  test('TRL, verl and SkyRL adapters play episodes with the env reward (unittest, live server)', async () => {
    const url = await start();
    const r = await run(['-B', SCRIPT], { MEDGYM_URL: url });
    if (process.env.MEDGYM_PY_VERBOSE) console.log(r.output);
    if (r.code !== 0 || !/\nOK\b/.test(r.output) || /skipped/.test(r.output)) {
      throw new Error(`python adapter tests failed (exit ${r.code}${r.signal ? `, signal ${r.signal}` : ''}; timeout ${TIMEOUT_MS} ms):\n${r.output}`);
    }
  });
});
