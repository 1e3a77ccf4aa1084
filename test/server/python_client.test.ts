// The Python client (python/medgym_client) against the env server: two servers start in-process on
// 127.0.0.1 port 0 (one open, one with a token), and /usr/bin/python3 runs the client's unittest
// file against them. python3-requests and python3-websocket are CI's (.ci/run installs them).
import * as path from 'node:path';
import { encode } from '../../src/tokenizer';
import { expectPythonSuite, PY_PKG, requirePython, useServers } from './harness';

const TOKEN = 'py-client-token';
// The suite's TOOL_CALL and ANSWER as medgym token ids, for its token-in-token-out steps.
const ENCODED = JSON.stringify({
  tool_call: encode('<tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}}</tool_call>'),
  answer: encode('<answer>A</answer>'),
});
const start = useServers('all');

describe('python client (python/medgym_client)', () => {
  test('python3 with requests and websocket-client is installed', requirePython);

  test('the unittest suite passes against live servers (HTTP, WebSocket, async, token ids, tools/call, blobs, token, errors)', async () => {
    const [open, guarded] = await Promise.all([start(), start({ token: TOKEN })]);
    await expectPythonSuite(path.join(PY_PKG, 'tests', 'test_client.py'), { MEDGYM_URL: open.url, MEDGYM_TOKEN_URL: guarded.url, MEDGYM_TOKEN: TOKEN, MEDGYM_ENCODED: ENCODED });
  });
});
