// GET /metrics (Prometheus text), the --log request lines and the --workers 404 message, on
// in-process servers (127.0.0.1, port 0, always closed).
import WebSocket from 'ws';
import { ownedSessionId, ownerOf } from '../../src/server/affinity';
import { DURATION_BUCKETS, mergeSnapshots, renderSnapshot, ServerMetrics } from '../../src/server/metrics';
import { request, useServers } from './harness';

const start = useServers();

/** The value of one sample line `name{labels} value` (labels as written, in order); undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const head = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}

const ZOOM = '<tool_call>{"name": "zoom_in", "arguments": {"cell": "B2"}}</tool_call>';
const ANSWER = '<answer>A</answer>';

describe('GET /metrics', () => {
  test('counts resets, steps and errors (HTTP and WebSocket) and has the duration histograms', async () => {
    const { port } = await start({ maxSessions: 4 });
    const a = (await request(port, 'POST', '/reset', { seed: 1 })).body.episode_id as string;
    expect((await request(port, 'POST', '/step', { episode_id: a, action: { text: ZOOM } })).status).toBe(200);
    expect((await request(port, 'POST', '/step', { episode_id: a, action: { text: ANSWER } })).body.done).toBe(true);
    expect((await request(port, 'POST', '/step', { episode_id: a, action: { text: ANSWER } })).status).toBe(409); // EPISODE_DONE
    expect((await request(port, 'POST', '/step', { episode_id: 'nope', action: { text: ANSWER } })).status).toBe(404);
    expect((await request(port, 'POST', '/step', { episode_id: 'nope', action: { text: 5 } })).status).toBe(400);
    expect((await request(port, 'GET', '/no-such-route')).status).toBe(404);
    expect((await request(port, 'POST', '/reset', { seed: 2, episode_id: a })).status).toBe(200);

    // One WebSocket episode: reset, answer, and one error frame.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const replies: any[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (d) => {
        replies.push(JSON.parse(d.toString()));
        if (replies.length === 3) resolve();
      });
      ws.once('error', reject);
      ws.once('open', () => {
        ws.send(JSON.stringify({ type: 'reset', data: { seed: 3 } }));
        ws.send(JSON.stringify({ type: 'step', data: { text: ANSWER } }));
        ws.send(JSON.stringify({ type: 'dance' }));
      });
    });
    expect(replies.map((r) => r.type)).toEqual(['observation', 'observation', 'error']);

    const m = await request(port, 'GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const t = m.text;
    expect(sample(t, 'medgym_sessions_active')).toBe(2); // the HTTP session and the open socket
    expect(sample(t, 'medgym_sessions_max')).toBe(4);
    expect(sample(t, 'medgym_resets_total')).toBe(3);
    expect(sample(t, 'medgym_steps_total')).toBe(3);
    expect(sample(t, 'medgym_sessions_evicted_total')).toBe(0);
    expect(sample(t, 'medgym_errors_total', 'code="EPISODE_DONE",status="409"')).toBe(1);
    expect(sample(t, 'medgym_errors_total', 'code="NOT_FOUND",status="404"')).toBe(2); // unknown episode_id and unknown route
    expect(sample(t, 'medgym_errors_total', 'code="VALIDATION_ERROR",status="400"')).toBe(1);
    expect(sample(t, 'medgym_errors_total', 'code="UNKNOWN_TYPE",status="400"')).toBe(1);
    for (const l of ['# TYPE medgym_request_duration_seconds histogram', '# TYPE medgym_errors_total counter', '# TYPE medgym_sessions_active gauge']) expect(t).toContain(l);

    // Histograms: HTTP counts every reset/step request (4 steps incl. the 3 errors, 2 resets); WS each message.
    const h = (route: string, transport: string, suffix: string, le?: string): number | undefined =>
      sample(t, `medgym_request_duration_seconds_${suffix}`, `route="${route}",transport="${transport}"${le ? `,le="${le}"` : ''}`);
    expect(h('step', 'http', 'count')).toBe(5);
    expect(h('reset', 'http', 'count')).toBe(2);
    expect(h('step', 'ws', 'count')).toBe(1);
    expect(h('reset', 'ws', 'count')).toBe(1);
    expect(h('step', 'http', 'bucket', '+Inf')).toBe(5);
    expect(h('step', 'http', 'sum')).toBeGreaterThan(0);
    // Buckets are cumulative and every bound is there.
    const counts = DURATION_BUCKETS.map((le) => h('step', 'http', 'bucket', String(le)));
    expect(counts.every((c) => typeof c === 'number')).toBe(true);
    for (let i = 1; i < counts.length; i++) expect(counts[i]!).toBeGreaterThanOrEqual(counts[i - 1]!);
    // Every line is a comment or `name{...} number`.
    for (const line of t.trimEnd().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [-+0-9.eInf]+)$/);

    await new Promise<void>((r) => (ws.once('close', () => r()), ws.close()));
  });

  test('idle evictions are counted', async () => {
    const { server, port } = await start({ idleTimeoutMs: 50 });
    await request(port, 'POST', '/reset', { seed: 1 });
    for (let k = 0; k < 100 && server.sessions.size > 0; k++) await new Promise((r) => setTimeout(r, 10));
    expect(sample((await request(port, 'GET', '/metrics')).text, 'medgym_sessions_evicted_total')).toBe(1);
  });

  test('needs the bearer token like every route but /health', async () => {
    const { port } = await start({ token: 's3cret' });
    const denied = await request(port, 'GET', '/metrics');
    expect({ status: denied.status, code: denied.body?.error?.code }).toEqual({ status: 401, code: 'UNAUTHORIZED' });
    expect((await request(port, 'GET', '/metrics', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
    const ok = await request(port, 'GET', '/metrics', undefined, { authorization: 'Bearer s3cret' });
    expect(ok.status).toBe(200);
    expect(sample(ok.text, 'medgym_errors_total', 'code="UNAUTHORIZED",status="401"')).toBe(2);
  });
});

describe('--log and --workers', () => {
  test('one JSON line per request, without the token or query strings', async () => {
    const lines: string[] = [];
    const { port } = await start({ token: 's3cret', logger: { stream: { write: (l: string) => lines.push(l) } } });
    const auth = { authorization: 'Bearer s3cret' };
    const id = (await request(port, 'POST', '/reset', { seed: 1 }, auth)).body.episode_id as string;
    await request(port, 'POST', '/step', { episode_id: id, action: { text: ANSWER } }, auth);
    await request(port, 'GET', `/state?episode_id=${id}&token=s3cret`, undefined, auth);
    await request(port, 'GET', '/metadata', undefined, { authorization: 'Bearer wrong-s3cret' });
    const recs = lines.map((l) => JSON.parse(l));
    const reqs = recs.filter((r) => r.msg === 'request');
    expect(reqs.map((r) => [r.method, r.path, r.status])).toEqual([
      ['POST', '/reset', 200],
      ['POST', '/step', 200],
      ['GET', '/state', 200],
      ['GET', '/metadata', 401],
    ]);
    expect(reqs[1]).toMatchObject({ route: '/step', level: 30 });
    expect(typeof reqs[1].ms).toBe('number');
    expect(lines.join('')).not.toMatch(/s3cret|authorization|Bearer/i);
  });

  test('off by default', async () => {
    const { server } = await start();
    expect([undefined, 'silent']).toContain(server.app.log.level); // fastify's no-op logger has no level
  });

  test('outside a cluster, workers > 1 changes no answer: /metadata reports it, ids stay plain uuids', async () => {
    const { port } = await start({ workers: 2 });
    const r = await request(port, 'POST', '/step', { episode_id: 'elsewhere', action: { text: ANSWER } });
    expect([r.status, r.body.error.code]).toEqual([404, 'NOT_FOUND']);
    expect((await request(port, 'POST', '/reset', {})).body.episode_id).toMatch(/^[0-9a-f-]{36}$/);
    const meta = (await request(port, 'GET', '/metadata')).body;
    expect(meta).toMatchObject({ pid: process.pid, worker: 0, workers: 2 });
  });

  test('session owners: server-made ids name their worker, client ids hash stably over all workers', () => {
    expect(ownerOf(ownedSessionId(3), 4)).toBe(3);
    expect(ownerOf('w1.x', 2)).toBe(1);
    expect(ownerOf('w7.x', 2)).toBe(ownerOf('w7.x', 2)); // out of range: hashed, still in [0, 2)
    const owners = Array.from({ length: 400 }, (_, i) => ownerOf(`client-${i}`, 4));
    expect(owners.every((o) => o >= 0 && o < 4)).toBe(true);
    for (let k = 0; k < 4; k++) expect(owners.filter((o) => o === k).length).toBeGreaterThan(60); // spread, not all on one
    expect(Array.from({ length: 400 }, (_, i) => ownerOf(`client-${i}`, 4))).toEqual(owners);
  });

  test('metrics of several workers sum: counters, errors, histograms, gauges', () => {
    const mk = (active: number): ServerMetrics => new ServerMetrics({ active: () => active, max: 8 });
    const [a, b] = [mk(2), mk(3)];
    a.steps = 5;
    b.steps = 7;
    a.resets = 1;
    a.error(404, 'NOT_FOUND');
    b.error(404, 'NOT_FOUND');
    a.observe('step', 'http', 0.003);
    b.observe('step', 'http', 0.2);
    const text = renderSnapshot(mergeSnapshots([a.snapshot(), b.snapshot()]));
    for (const line of [
      'medgym_processes 2',
      'medgym_sessions_active 5',
      'medgym_sessions_max 16',
      'medgym_steps_total 12',
      'medgym_resets_total 1',
      'medgym_errors_total{code="NOT_FOUND",status="404"} 2',
      'medgym_request_duration_seconds_bucket{route="step",transport="http",le="0.0025"} 0',
      'medgym_request_duration_seconds_bucket{route="step",transport="http",le="0.005"} 1',
      'medgym_request_duration_seconds_bucket{route="step",transport="http",le="0.25"} 2',
      'medgym_request_duration_seconds_count{route="step",transport="http"} 2',
    ]) {
      expect(text.split('\n')).toContain(line);
    }
    expect(a.render()).toBe(renderSnapshot(a.snapshot()));
  });
});
