// The trainer adapters (python/medgym_client/medgym_client/adapters: TRL environment_factory, verl
// AgentLoop, SkyRL BaseTextEnv) against the env server: a server starts in-process on 127.0.0.1
// port 0 and /usr/bin/python3 runs one unittest file per adapter (tests/test_{trl,verl,skyrl}_adapter.py,
// plus the shared helpers' tests), each driving its adapter the way its trainer does (none of trl /
// verl / skyrl_gym is installed; python3-pil adds the PIL image tests).
import * as path from 'node:path';
import { expectPythonSuite, PY_PKG, requirePython, useServers } from './harness';

const start = useServers('all');

describe('python trainer adapters (python/medgym_client/medgym_client/adapters)', () => {
  test('python3 with requests and websocket-client is installed', requirePython);

  test.each(['trl', 'verl', 'skyrl'])('the %s adapter plays episodes with the env reward (unittest, live server)', async (name) => {
    const { url } = await start();
    await expectPythonSuite(path.join(PY_PKG, 'tests', `test_${name}_adapter.py`), { MEDGYM_URL: url });
  });

  test('the adapters\' shared helpers (URLs, text, the env text parsers)', async () => {
    await expectPythonSuite(path.join(PY_PKG, 'tests', 'test_adapter_common.py'), {});
  });
});
