// medgym's env server: OpenEnv's HTTP + WebSocket protocol in front of an unchanged MedGymEnv.
// HTTP reset creates a session (the episode_id) in a table; step/state/close address it by
// episode_id. /ws holds one env per socket. Client mistakes are 4xx JSON errors, never a crash.
import cluster from 'node:cluster';
import fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import { listEnvs } from '../env/registry';
import type { Dataset } from '../data/types';
import type { MedGymOptions } from '../env/types';
import { toolJsonSchemas } from '../tools/schemas';
import { answerForwarded, installAffinity, ownedSessionId, type ForwardedRequest } from './affinity';
import { checkExposure, installAuth } from './auth';
import { workerIndex } from './cluster';
import { workerRpc, type WorkerRpc } from './cluster_rpc';
import { checkDatasetDecls, openDeclaredDatasets, type DatasetDecl } from './datasets';
import { EnvServerError, fromFastifyError } from './errors';
import { registerMcp } from './mcp';
import { mergeSnapshots, renderSnapshot, ServerMetrics, type MetricsSnapshot } from './metrics';
import { BlobStore, type ImagesMode } from './observation';
import { SessionTable } from './sessions';
import { toolCallResult, toolCallText } from './tools_call';
import { actionOf, closeRequestSchema, episodeIdSchema, parse, resetRequestSchema, stepRequestSchema, toolCallRequestSchema, wireSchemas } from './wire';
import { handleSocket } from './ws';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

export const DEFAULT_ENV = 'MedVista-Synth-Lesion-Visible-v0';

export interface EnvServerOptions {
  /** Interface to bind (the caller's listen() uses it). Default 127.0.0.1; any other needs `token`. */
  host?: string;
  /** Bearer token required on every route but /health. */
  token?: string;
  /** Live sessions (HTTP episode_ids and sockets together). Default 256. */
  maxSessions?: number;
  /** A session untouched this long is closed. Default 10 minutes. */
  idleTimeoutMs?: number;
  /** Largest request body or WebSocket message, bytes. Default 1 MiB. */
  bodyLimit?: number;
  /** Env id of new sessions when a reset names none. Default MedVista-Synth-Lesion-Visible-v0. */
  env?: string;
  /** Options of every env the server makes (make(id, envOptions)). */
  envOptions?: MedGymOptions;
  /**
   * One JSON line per HTTP request (pino, fastify's logger): method, path, route, status, ms. Headers
   * (so the bearer token) and query strings are never logged. `true` writes to stdout; `{ stream }`
   * elsewhere. Default off.
   */
  logger?: boolean | { stream: { write(line: string): unknown } };
  /**
   * Worker processes sharing the port (--workers). In a cluster worker with > 1, HTTP requests for a
   * session another worker owns are forwarded to it and /metrics sums every worker's. Default 1.
   */
  workers?: number;
  /** How views travel unless a reset's options.images says otherwise: base64 in the observation (inline, default) or GET /blobs/<sha256> (blobs). */
  images?: ImagesMode;
  /** View PNGs kept for GET /blobs/<sha256>, least recently sent out first. Default 256. */
  blobCapacity?: number;
  /**
   * Datasets a reset may name ({"dataset": NAME}), as `medgym train --dataset PATH --dataset-kind KIND`
   * opens them. Opened once before the server listens (listen()/ready() reject naming the bad one);
   * clients see the names only (GET /metadata), never the paths.
   */
  datasets?: Record<string, DatasetDecl>;
  /** What a dataset error names (`--dataset` for the CLI). Default "datasets". */
  datasetsFlag?: string;
}

export interface EnvServer {
  /** Not yet listening: call app.listen({ host: server.host, port }) or app.inject(). */
  readonly app: FastifyInstance;
  readonly host: string;
  readonly sessions: SessionTable;
  /** What GET /metrics renders. */
  readonly metrics: ServerMetrics;
  /** Ends every session and socket, then stops listening. */
  close(): Promise<void>;
}

const positiveInt = (name: string, v: number): number => {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`Expected positive integer for ${name} but received ${v}`);
  return v;
};

export function createEnvServer(options: EnvServerOptions = {}): EnvServer {
  const host = options.host ?? '127.0.0.1';
  checkExposure(host, options.token);
  const maxSessions = positiveInt('maxSessions', options.maxSessions ?? 256);
  const idleTimeoutMs = positiveInt('idleTimeoutMs', options.idleTimeoutMs ?? 10 * 60_000);
  const bodyLimit = positiveInt('bodyLimit', options.bodyLimit ?? 1 << 20);
  const defaultEnv = options.env ?? DEFAULT_ENV;
  if (!listEnvs().some((s) => s.id === defaultEnv)) throw new RangeError(`Expected a registered env id for env but received ${JSON.stringify(defaultEnv)}`);
  const workers = positiveInt('workers', options.workers ?? 1);
  const images = options.images ?? 'inline';
  if (images !== 'inline' && images !== 'blobs') throw new RangeError(`Expected "inline" or "blobs" for images but received ${JSON.stringify(images)}`);
  const blobs = new BlobStore(positiveInt('blobCapacity', options.blobCapacity ?? 256));
  const datasetDecls = options.datasets ?? {};
  checkDatasetDecls(datasetDecls, options.datasetsFlag);
  const datasets = new Map<string, Dataset>(); // filled by the plugin below, before any request
  // The gauge reads the table (declared next; read only once requests come in), the table counts into the metrics.
  const metrics: ServerMetrics = new ServerMetrics({ active: (): number => sessions.size, max: maxSessions });
  const me = workerIndex();
  // With --workers N, workers answer each other through the primary (cluster_rpc.ts): forwarded
  // session requests, metrics snapshots, blobs another worker sent.
  const rpc: WorkerRpc | undefined =
    workers > 1 && cluster.isWorker
      ? workerRpc({
          forward: (p) => answerForwarded(app, p as ForwardedRequest),
          metrics: () => metrics.snapshot(),
          blob: (sha) => {
            const png = sessions.blobs.get(String(sha));
            return png ? Buffer.from(png).toString('base64') : null;
          },
        })
      : undefined;
  const sessions = new SessionTable({ maxSessions, idleTimeoutMs, defaultEnv, envOptions: options.envOptions ?? {}, metrics, images, blobs, datasets, ...(rpc ? { newId: () => ownedSessionId(me) } : {}) });
  let wasForwarded = (_req: FastifyRequest): boolean => false;

  const app = fastify({
    logger: loggerOptions(options.logger),
    logController: new LogController({ disableRequestLogging: true }), // our onResponse hook writes one line per request instead of two
    bodyLimit,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });

  app.setErrorHandler((err, req, reply) => {
    const e = err instanceof EnvServerError ? err : fromFastifyError(err as { statusCode?: number; code?: string; message: string });
    if (e) {
      metrics.error(e.status, e.code);
      return reply.code(e.status).send({ error: { code: e.code, message: e.message } });
    }
    req.log.error(err);
    metrics.error(500, 'EXECUTION_ERROR');
    return reply.code(500).send({ error: { code: 'EXECUTION_ERROR', message: 'internal error (see the server log)' } });
  });
  app.setNotFoundHandler((req, reply) => {
    metrics.error(404, 'NOT_FOUND');
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}` } });
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url;
    // tools/call is a step (same accounting), so it is timed as one.
    if ((route === '/reset' || route === '/step' || route === '/tools/call') && !wasForwarded(req)) metrics.observe(route === '/reset' ? 'reset' : 'step', 'http', reply.elapsedTime / 1000);
    if (options.logger) {
      // Path only: a query string is the client's to fill and headers carry the token.
      req.log.info({ method: req.method, path: req.url.split('?')[0].slice(0, 200), route: route ?? null, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 1000) / 1000 }, 'request');
    }
  });
  app.addHook('onClose', async () => {
    rpc?.close();
    sessions.closeAll();
  });

  // The WebSocket plugin first: its onRequest hook must see an upgrade before auth may refuse it,
  // or a refused upgrade's socket is never closed (and close() waits for it forever).
  void app.register(websocket, { options: { maxPayload: bodyLimit } });
  // Datasets open before listening: listen() and ready() reject with the bad one's error.
  if (Object.keys(datasetDecls).length) {
    void app.register(async () => {
      for (const [name, d] of await openDeclaredDatasets(datasetDecls, options.datasetsFlag)) datasets.set(name, d);
    });
  }
  void app.register(async (scope) => {
    if (options.token) installAuth(scope, options.token);
    if (rpc) wasForwarded = installAffinity(scope, rpc, me, workers);
    registerRoutes(scope, { sessions, metrics, defaultEnv, maxSessions, idleTimeoutMs, workers, rpc });
  });

  return {
    app,
    host,
    sessions,
    metrics,
    async close() {
      sessions.closeAll();
      await app.close();
    },
  };
}

/** pino options: JSON lines, request serializer without headers, and the auth headers redacted should anything log them. */
function loggerOptions(opt: EnvServerOptions['logger']): false | Record<string, unknown> {
  if (!opt) return false;
  return {
    level: 'info',
    ...(opt === true ? {} : { stream: opt.stream }),
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', 'authorization', 'token'], censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string; url?: string }) => ({ method: req.method, path: req.url?.split('?')[0] }),
    },
  };
}

interface RouteContext {
  sessions: SessionTable;
  metrics: ServerMetrics;
  defaultEnv: string;
  maxSessions: number;
  idleTimeoutMs: number;
  workers: number;
  rpc: WorkerRpc | undefined;
}

function registerRoutes(app: FastifyInstance, { sessions, metrics, defaultEnv, maxSessions, idleTimeoutMs, workers, rpc }: RouteContext): void {
  // episode_id from the body, the query, or X-Session-Id (clients that keep bodies OpenEnv-pure).
  const sessionId = (req: FastifyRequest, fromBody: string | null | undefined): string | undefined => {
    if (fromBody) return fromBody;
    const q = (req.query as { episode_id?: unknown } | undefined)?.episode_id;
    const h = req.headers['x-session-id'];
    const v = q ?? h;
    if (v === undefined) return undefined;
    return parse(episodeIdSchema, v, q !== undefined ? 'query.episode_id' : 'header.x-session-id');
  };
  const requireId = (id: string | undefined): string => {
    if (id === undefined) throw new EnvServerError(400, 'VALIDATION_ERROR', 'episode_id: required (in the body, ?episode_id= or X-Session-Id); POST /reset returns one');
    return id;
  };

  app.get('/health', async () => ({ status: 'healthy' }));

  app.get('/metadata', async () => ({
    name: 'medgym',
    description: 'Medical visual question answering with image tools (zoom, crop, window, enhance, rotate/flip): one image and question per episode, the policy calls tools across turns and answers.',
    version,
    env: defaultEnv,
    envs: listEnvs().map((s) => ({ id: s.id, description: s.description, requires_dataset: s.requiresDataset ?? false })),
    // Declared dataset names a reset may name ({"dataset": NAME}); never their paths.
    datasets: sessions.datasetNames(),
    // Items per declared dataset and per split (a reset may name NAME:train, NAME:val, NAME:test).
    dataset_sizes: sessions.datasetSizes(),
    tools: toolJsonSchemas(),
    sessions: { active: sessions.size, max: maxSessions, idle_timeout_ms: idleTimeoutMs },
    // Which process answered: with --workers N, sessions live in one worker (docs/bridges.md).
    pid: process.pid,
    worker: workerIndex(),
    workers,
  }));

  // Every worker's counters summed (?scope=worker: this process's only).
  app.get('/metrics', async (req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    if (!rpc || (req.query as { scope?: unknown }).scope === 'worker') return metrics.render();
    let snaps: MetricsSnapshot[];
    try {
      snaps = (await rpc.call('all', 'metrics', null, 3000)) as MetricsSnapshot[];
    } catch {
      snaps = [metrics.snapshot()]; // the primary is going away: this worker's own numbers, medgym_processes 1 says so
    }
    return renderSnapshot(mergeSnapshots(snaps));
  });

  app.get('/schema', async () => wireSchemas());

  app.post('/reset', async (req) => {
    const body = parse(resetRequestSchema, req.body ?? {}, 'body');
    const id = sessionId(req, body.episode_id);
    let s = id !== undefined && sessions.has(id) ? sessions.get(id, 'http') : undefined;
    const next = s && sessions.switchFor(s, body);
    if (s && next) s = sessions.switchEnv(s, next);
    const created = !s;
    s ??= sessions.create('http', body, id);
    try {
      return await sessions.reset(s, body);
    } catch (err) {
      if (created) sessions.delete(s.id); // a session whose first reset failed would only hold a slot
      throw err;
    }
  });

  app.post('/step', async (req) => {
    const body = parse(stepRequestSchema, req.body, 'body');
    const s = sessions.get(requireId(sessionId(req, body.episode_id)), 'http');
    return sessions.step(s, actionOf(body.action), body.request_id);
  });

  app.get('/state', async (req) => sessions.state(sessions.get(requireId(sessionId(req, undefined)), 'http')));

  app.post('/close', async (req) => {
    const body = parse(closeRequestSchema, req.body, 'body');
    sessions.get(body.episode_id, 'http'); // 404 for an unknown id
    sessions.delete(body.episode_id);
    return { episode_id: body.episode_id, closed: true };
  });

  app.get('/tools/list', async () => ({
    tools: toolJsonSchemas().map((t) => ({ name: t.name, description: t.description, inputSchema: t.parameters })),
  }));

  // Exactly a step whose action is <tool_call>{"name", "arguments"}</tool_call> (src/server/tools_call.ts).
  app.post('/tools/call', async (req) => {
    const body = parse(toolCallRequestSchema, req.body, 'body');
    const text = toolCallText(body.name, body.arguments);
    const s = sessions.get(requireId(sessionId(req, body.episode_id)), 'http');
    return toolCallResult(await sessions.step(s, text, body.request_id));
  });

  // Content-addressed view PNGs: the sha256 an observation reported (of the pixels), while kept.
  app.get('/blobs/:sha256', async (req, reply) => {
    const sha = (req.params as { sha256: string }).sha256;
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new EnvServerError(400, 'VALIDATION_ERROR', 'params.sha256: expected 64 lowercase hex digits (the sha256 of an observation image)');
    let png = sessions.blobs.get(sha);
    if (!png && rpc) {
      // Another worker may have sent it: ask them all.
      const found = ((await rpc.call('all', 'blob', sha, 3000).catch(() => [])) as (string | null)[]).find((b) => b !== null);
      if (found) png = Buffer.from(found, 'base64');
    }
    if (!png) throw new EnvServerError(404, 'NOT_FOUND', `blob ${sha}: not kept (never sent, or one of more than ${sessions.blobs.capacity} views sent since)`);
    reply.type('image/png').header('cache-control', 'public, max-age=31536000, immutable');
    return png;
  });

  app.get('/ws', { websocket: true }, (socket) => handleSocket(sessions, socket, metrics));

  registerMcp(app, sessions, version);
}
