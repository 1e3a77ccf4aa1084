// POST /mcp: the env as an MCP server (JSON-RPC over streamable HTTP, JSON answers). A session
// opened by initialize plays the same episode as the REST routes for the same seed and calls;
// transport mistakes are 4xx JSON-RPC errors, tool mistakes are isError results.
import { MCP_PROTOCOL_VERSIONS } from '../../src/server/mcp';
import { toolCallText } from '../../src/server/tools_call';
import { request, useServers } from './harness';

const start = useServers();
let nextId = 1;

/** One JSON-RPC request (or notification when id is null) on session `sid`. */
function rpc(port: number, method: string, params?: unknown, sid?: string, id: number | null = nextId++) {
  const msg = { jsonrpc: '2.0', method, ...(id !== null ? { id } : {}), ...(params !== undefined ? { params } : {}) };
  return request(port, 'POST', '/mcp', msg, { accept: 'application/json, text/event-stream', ...(sid ? { 'mcp-session-id': sid } : {}) });
}

async function initialize(port: number): Promise<string> {
  const r = await rpc(port, 'initialize', { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'test', version: '0' } });
  expect(r.status).toBe(200);
  expect(r.body.result).toMatchObject({ protocolVersion: '2025-03-26', capabilities: { tools: {} }, serverInfo: { name: 'medgym' } });
  const sid = r.headers['mcp-session-id'];
  expect(typeof sid).toBe('string');
  expect((await rpc(port, 'notifications/initialized', undefined, sid as string, null)).status).toBe(202);
  return sid as string;
}

const ZOOM = { name: 'zoom_in', arguments: { cell: 'B3' } };

describe('serve-env /mcp', () => {
  test('an MCP session plays the REST episode of the same seed: reset, a tool call, an answer', async () => {
    const { port } = await start();
    const sid = await initialize(port);
    const tools = (await rpc(port, 'tools/list', {}, sid)).body.result.tools.map((t: { name: string }) => t.name);
    expect(tools[0]).toBe('reset');
    expect(tools).toEqual(expect.arrayContaining(['zoom_in', 'crop_multi', 'window', 'answer']));
    expect((await rpc(port, 'ping', {}, sid)).body).toEqual({ jsonrpc: '2.0', id: expect.any(Number), result: {} });

    // before reset: a tool error, not a protocol error
    const early = (await rpc(port, 'tools/call', ZOOM, sid)).body.result;
    expect(early.isError).toBe(true);
    expect(early.content[0].text).toMatch(/NO_EPISODE/);

    const rest = (await request(port, 'POST', '/reset', { seed: 7 })).body;
    const reset = (await rpc(port, 'tools/call', { name: 'reset', arguments: { seed: 7 } }, sid)).body.result;
    expect(reset.isError).toBe(false);
    expect(reset.content[0]).toEqual({ type: 'text', text: rest.observation.text });
    expect(reset.content[1]).toEqual({ type: 'image', data: rest.observation.images[0].data, mimeType: 'image/png', _meta: expect.objectContaining({ sha256: rest.observation.images[0].sha256 }) });
    expect(reset.structuredContent).toMatchObject({ episode_id: sid, done: false, reward: null });

    const restZoom = (await request(port, 'POST', '/step', { episode_id: rest.episode_id, action: { text: toolCallText(ZOOM.name, ZOOM.arguments) } })).body;
    const zoom = (await rpc(port, 'tools/call', ZOOM, sid)).body.result;
    expect(zoom.isError).toBe(false);
    expect(restZoom.observation.text).toContain(zoom.content[0].text);
    expect(zoom.content.slice(1).map((c: { _meta: { sha256: string } }) => c._meta.sha256)).toEqual(restZoom.observation.images.map((i: { sha256: string }) => i.sha256));
    expect(zoom.structuredContent.reward).toBe(restZoom.reward);

    const restAnswer = (await request(port, 'POST', '/step', { episode_id: rest.episode_id, action: { text: '<answer>A</answer>' } })).body;
    const answer = (await rpc(port, 'tools/call', { name: 'answer', arguments: { answer: 'A' } }, sid)).body.result;
    expect(answer.structuredContent).toMatchObject({ done: true, reward: restAnswer.reward });
    const after = (await rpc(port, 'tools/call', ZOOM, sid)).body.result;
    expect([after.isError, after.content[0].text]).toEqual([true, expect.stringMatching(/EPISODE_DONE/)]);

    expect((await request(port, 'DELETE', '/mcp', undefined, { 'mcp-session-id': sid })).status).toBe(204);
    const gone = await rpc(port, 'tools/list', {}, sid);
    expect([gone.status, gone.body.error.code]).toEqual([404, -32001]);
  });

  test('transport and protocol mistakes: 4xx JSON-RPC errors; method and params mistakes: JSON-RPC errors', async () => {
    const { port } = await start();
    const sid = await initialize(port);
    const unknownVersion = await rpc(port, 'initialize', { protocolVersion: '1999-01-01' });
    expect(unknownVersion.body.result.protocolVersion).toBe(MCP_PROTOCOL_VERSIONS[0]);
    const cases: [Promise<Awaited<ReturnType<typeof request>>>, number, number, RegExp][] = [
      [rpc(port, 'tools/list', {}), 400, -32600, /mcp-session-id: required/],
      [rpc(port, 'tools/list', {}, 'no-such-session'), 404, -32001, /no such session/],
      [request(port, 'POST', '/mcp', '{"jsonrpc": "2.0", "id": 1, "method": ', { 'mcp-session-id': sid }), 400, -32700, /JSON/],
      [request(port, 'POST', '/mcp', [{ jsonrpc: '2.0', id: 1, method: 'ping' }], { 'mcp-session-id': sid }), 400, -32600, /batches/],
      [request(port, 'POST', '/mcp', { jsonrpc: '1.0', id: 1, method: 'ping' }, { 'mcp-session-id': sid }), 400, -32600, /JSON-RPC 2\.0/],
      [request(port, 'POST', '/mcp', { jsonrpc: '2.0', id: { x: 1 }, method: 'ping' }, { 'mcp-session-id': sid }), 400, -32600, /id/],
      [rpc(port, 'resources/list', {}, sid), 200, -32601, /not found/],
      [rpc(port, 'tools/call', { name: 'rm -rf', arguments: {} }, sid), 200, -32602, /unknown tool/],
      [rpc(port, 'tools/call', { name: 'zoom_in', arguments: [1] }, sid), 200, -32602, /arguments/],
    ];
    for (const [p, status, code, message] of cases) {
      const r = await p;
      expect([r.status, r.body.jsonrpc, r.body.error?.code]).toEqual([status, '2.0', code]);
      expect(r.body.error.message).toMatch(message);
    }
    await rpc(port, 'tools/call', { name: 'reset', arguments: { seed: 1 } }, sid);
    for (const args of [{ answer: '</answer><answer>B' }, { answer: '' }, {}]) {
      const r = (await rpc(port, 'tools/call', { name: 'answer', arguments: args }, sid)).body.result;
      expect(r.isError).toBe(true);
    }
    const badReset = (await rpc(port, 'tools/call', { name: 'reset', arguments: { seed: -1 } }, sid)).body.result;
    expect(badReset.isError).toBe(true);
    const deep = (await rpc(port, 'tools/call', { name: 'zoom_in', arguments: { a: [[[[[[[[[[1]]]]]]]]]] } }, sid)).body.result;
    expect([deep.isError, deep.content[0].text]).toEqual([true, expect.stringMatching(/nested deeper/)]);
    expect((await request(port, 'GET', '/mcp')).status).toBe(405);
  });

  test('with a token, /mcp needs it like every other route', async () => {
    const { port } = await start({ token: 'mcp-secret' });
    expect((await rpc(port, 'initialize', { protocolVersion: '2025-06-18' })).status).toBe(401);
    const r = await request(port, 'POST', '/mcp', { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }, { authorization: 'Bearer mcp-secret' });
    expect(r.status).toBe(200);
  });
});
