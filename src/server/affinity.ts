// HTTP session affinity across `serve-env --workers N`: a session lives in one worker, but each new
// TCP connection may land on any worker. Every episode_id therefore names its owner — ids the server
// makes are `w<k>.<uuid>`, an id a client chooses belongs to worker hash(id) mod N — and a request
// that reaches another worker is forwarded to the owner through the primary (src/server/cluster_rpc.ts)
// and answered with the owner's status and body. WebSockets need none of this: one socket, one worker.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WorkerRpc } from './cluster_rpc';
import { EnvServerError } from './errors';

/** Marks a forwarded request: its receiver handles it whatever the id says (no forwarding loops). */
const FORWARDED = 'x-medgym-forwarded';
/** Routes that address a session by episode_id. */
const SESSION_ROUTES = new Set(['/reset', '/step', '/state', '/close', '/tools/call', '/mcp']);
/** Headers the owner needs; the bearer token was already checked by the receiving worker, but the owner checks it again. */
const KEPT_HEADERS = ['authorization', 'content-type', 'x-session-id', 'mcp-session-id', 'mcp-protocol-version', 'accept'] as const;

/** FNV-1a: a stable, cheap hash for client-chosen ids (any process computes the same owner). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The worker that owns session `id` among `workers`. */
export function ownerOf(id: string, workers: number): number {
  const m = /^w(\d+)\./.exec(id);
  if (m && Number(m[1]) < workers) return Number(m[1]);
  return fnv1a(id) % workers;
}

/** A new session id owned by worker `worker`. */
export const ownedSessionId = (worker: number): string => `w${worker}.${randomUUID()}`;

/** What the receiving worker sends the owner, and what comes back. */
export interface ForwardedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: unknown;
}
export interface ForwardedReply {
  status: number;
  contentType: string;
  body: string;
}

/** The owner's side: runs a forwarded request through this worker's routes (auth and validation included). */
export async function answerForwarded(app: FastifyInstance, r: ForwardedRequest): Promise<ForwardedReply> {
  const res = await app.inject({
    method: r.method as 'GET' | 'POST',
    url: r.url,
    headers: { ...r.headers, [FORWARDED]: '1' },
    ...(r.body !== undefined ? { payload: JSON.stringify(r.body) } : {}),
  });
  return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? 'application/json; charset=utf-8'), body: res.body };
}

/** The episode_id a session request names (body, ?episode_id=, X-Session-Id, Mcp-Session-Id), unvalidated: the owner validates. */
function namedId(req: FastifyRequest): string | undefined {
  const b = req.body as { episode_id?: unknown } | null | undefined;
  const q = (req.query as { episode_id?: unknown } | undefined)?.episode_id;
  const v = (b && typeof b === 'object' && !Array.isArray(b) ? b.episode_id : undefined) ?? q ?? req.headers['x-session-id'] ?? req.headers['mcp-session-id'];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * preHandler of the session routes in worker `me`: a request naming a session another worker owns
 * is forwarded there. Returns true on requests it forwarded (their durations are the owner's to count).
 */
export function installAffinity(app: FastifyInstance, rpc: WorkerRpc, me: number, workers: number): (req: FastifyRequest) => boolean {
  const forwarded = new WeakSet<FastifyRequest>();
  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    const route = req.routeOptions.url;
    if (route === undefined || !SESSION_ROUTES.has(route) || req.headers[FORWARDED] !== undefined) return;
    const id = namedId(req);
    if (id === undefined) return;
    const owner = ownerOf(id, workers);
    if (owner === me) return;
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    let r: ForwardedReply;
    try {
      r = (await rpc.call(owner, 'forward', { method: req.method, url: req.url, headers, body: req.body ?? undefined } satisfies ForwardedRequest)) as ForwardedReply;
    } catch (err) {
      // The owner died (its sessions with it) or is restarting: the session is gone either way.
      throw new EnvServerError(404, 'NOT_FOUND', `episode_id ${JSON.stringify(id)}: its worker (${owner}) is not running, so the session is gone (${err instanceof Error ? err.message : String(err)})`);
    }
    forwarded.add(req);
    return reply.code(r.status).type(r.contentType).send(r.body);
  });
  return (req) => forwarded.has(req);
}
