// medgym's env server: OpenEnv's HTTP + WebSocket protocol in front of an unchanged MedGymEnv.
// HTTP reset creates a session (the episode_id) in a table; step/state/close address it by
// episode_id. /ws holds one env per socket. Client mistakes are 4xx JSON errors, never a crash.
import fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import { listEnvs } from '../env/registry';
import type { MedGymOptions } from '../env/types';
import { toolJsonSchemas } from '../tools/schemas';
import { checkExposure, installAuth } from './auth';
import { EnvServerError, fromFastifyError } from './errors';
import { SessionTable } from './sessions';
import { closeRequestSchema, episodeIdSchema, parse, resetRequestSchema, stepRequestSchema, wireSchemas } from './wire';
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
  /** Fastify's request log. Default off. */
  logger?: boolean;
}

export interface EnvServer {
  /** Not yet listening: call app.listen({ host: server.host, port }) or app.inject(). */
  readonly app: FastifyInstance;
  readonly host: string;
  readonly sessions: SessionTable;
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
  const sessions = new SessionTable({ maxSessions, idleTimeoutMs, defaultEnv, envOptions: options.envOptions ?? {} });

  const app = fastify({ logger: options.logger ?? false, bodyLimit, onProtoPoisoning: 'error', onConstructorPoisoning: 'error' });

  app.setErrorHandler((err, req, reply) => {
    const e = err instanceof EnvServerError ? err : fromFastifyError(err as { statusCode?: number; code?: string; message: string });
    if (e) return reply.code(e.status).send({ error: { code: e.code, message: e.message } });
    req.log.error(err);
    return reply.code(500).send({ error: { code: 'EXECUTION_ERROR', message: 'internal error (see the server log)' } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}` } });
  });
  app.addHook('onClose', async () => sessions.closeAll());

  // The WebSocket plugin first: its onRequest hook must see an upgrade before auth may refuse it,
  // or a refused upgrade's socket is never closed (and close() waits for it forever).
  void app.register(websocket, { options: { maxPayload: bodyLimit } });
  void app.register(async (scope) => {
    if (options.token) installAuth(scope, options.token);
    registerRoutes(scope, { sessions, defaultEnv, maxSessions, idleTimeoutMs });
  });

  return {
    app,
    host,
    sessions,
    async close() {
      sessions.closeAll();
      await app.close();
    },
  };
}

interface RouteContext {
  sessions: SessionTable;
  defaultEnv: string;
  maxSessions: number;
  idleTimeoutMs: number;
}

function registerRoutes(app: FastifyInstance, { sessions, defaultEnv, maxSessions, idleTimeoutMs }: RouteContext): void {
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
    tools: toolJsonSchemas(),
    sessions: { active: sessions.size, max: maxSessions, idle_timeout_ms: idleTimeoutMs },
  }));

  app.get('/schema', async () => wireSchemas());

  app.post('/reset', async (req) => {
    const body = parse(resetRequestSchema, req.body ?? {}, 'body');
    const id = sessionId(req, body.episode_id);
    let s = id !== undefined && sessions.has(id) ? sessions.get(id, 'http') : undefined;
    if (s && body.env && body.env !== s.envId) s = sessions.switchEnv(s, body.env);
    const created = !s;
    s ??= sessions.create('http', body.env, id);
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
    return sessions.step(s, body.action.text, body.request_id);
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

  app.post('/tools/call', async () => {
    // Tools run inside step() from the policy's <tool_call> text; a side door would bypass the
    // episode's accounting (turns, budgets, repeated-call checks) until it is designed.
    throw new EnvServerError(501, 'NOT_IMPLEMENTED', 'tools/call is not implemented yet: put <tool_call>{"name": ..., "arguments": {...}}</tool_call> in a step action');
  });

  app.get('/ws', { websocket: true }, (socket) => handleSocket(sessions, socket));
}
