// Who may talk to the server: loopback without a token, anything else only with one; then a
// bearer token on every route but /health (probes carry no secrets).
import { timingSafeEqual, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { EnvServerError } from './errors';

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** Throws a RangeError for a host that others can reach when no token guards it. */
export function checkExposure(host: string, token: string | undefined): void {
  if (token !== undefined && token.length === 0) throw new RangeError('Expected a non-empty token but received an empty string');
  if (!isLoopback(host) && !token) {
    throw new RangeError(`Refusing to serve on ${JSON.stringify(host)} without a token: anyone who reaches it could drive the env. Pass --token (or MEDGYM_TOKEN), or bind 127.0.0.1`);
  }
}

// Hash both sides to equal length first: timingSafeEqual needs it, and the length itself stays secret.
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** onRequest hook: 401 unless `Authorization: Bearer <token>`; runs before the WebSocket upgrade too. */
export function installAuth(app: FastifyInstance, token: string): void {
  const want = digest(token);
  app.addHook('onRequest', async (req) => {
    if (req.url === '/health' || req.url.startsWith('/health?')) return;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]), want)) {
      throw new EnvServerError(401, 'UNAUTHORIZED', m ? 'wrong bearer token' : 'missing Authorization: Bearer <token> header');
    }
  });
}
