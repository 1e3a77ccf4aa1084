// WebSocket /ws: one env per socket (OpenEnv's WS protocol). Messages are handled one at a time in
// arrival order, so a client may pipeline reset/step without waiting; a bad message gets an error
// frame and the socket stays usable.
import type { WebSocket } from 'ws';
import { EnvServerError, type ErrorBody } from './errors';
import type { ServerMetrics, TimedRoute } from './metrics';
import type { Session, SessionTable } from './sessions';
import { toolCallResult, toolCallText } from './tools_call';
import { actionOf, actionSchema, parse, resetRequestSchema, stepRequestSchema, toolCallRequestSchema } from './wire';

/** Messages queued on one socket before it is told to slow down. */
const MAX_PENDING = 32;

type Reply = { type: 'observation'; data: unknown } | { type: 'tools/call'; data: unknown } | { type: 'state'; data: unknown } | { type: 'error'; data: ErrorBody };

export function handleSocket(table: SessionTable, socket: WebSocket, metrics?: ServerMetrics): void {
  const send = (m: Reply): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
  };
  const sendError = (err: unknown): void => {
    const data = toErrorBody(err);
    metrics?.error(err instanceof EnvServerError ? err.status : 500, data.code);
    send({ type: 'error', data });
  };
  /** Runs a reset or step and records its duration (failed ones too, as HTTP does). */
  const timed = async <T>(route: TimedRoute, fn: () => Promise<T>): Promise<T> => {
    const t0 = process.hrtime.bigint();
    try {
      return await fn();
    } finally {
      metrics?.observe(route, 'ws', Number(process.hrtime.bigint() - t0) / 1e9);
    }
  };
  let session: Session;
  try {
    session = table.create('ws', null);
  } catch (err) {
    sendError(err);
    socket.close(1013, 'server at capacity');
    return;
  }
  const bind = (s: Session): void => {
    s.onEnd = (reason) => socket.close(1001, reason === 'idle' ? 'idle timeout' : 'server shutting down');
  };
  bind(session);
  let closed = false;
  let pending = 0;
  let chain = Promise.resolve();

  const handle = async (raw: string): Promise<void> => {
    let msg: unknown;
    try {
      msg = JSON.parse(raw);
    } catch (err) {
      throw new EnvServerError(400, 'INVALID_JSON', `message is not JSON: ${(err as Error).message}`);
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new EnvServerError(400, 'VALIDATION_ERROR', 'message: expected an object {"type": ..., "data": ...}');
    const { type, data } = msg as { type?: unknown; data?: unknown };
    switch (type) {
      case 'reset': {
        // episode_id is accepted for OpenEnv clients and ignored: the socket is the session.
        const req = parse(resetRequestSchema, data ?? {}, 'data');
        const next = table.switchFor(session, req);
        if (next) {
          // One env per socket, but a reset may switch the task (env id or dataset): the new env takes the same slot.
          session = table.switchEnv(session, next);
        }
        send({ type: 'observation', data: await timed('reset', () => table.reset(session, req)) });
        return;
      }
      case 'step': {
        // OpenEnv sends the action as data; {"action": ..., "request_id"?} is accepted too.
        const hasAction = data !== null && typeof data === 'object' && 'action' in data;
        const req = hasAction ? parse(stepRequestSchema, data, 'data') : { action: parse(actionSchema, data, 'data'), request_id: undefined };
        send({ type: 'observation', data: await timed('step', () => table.step(session, actionOf(req.action), req.request_id)) });
        return;
      }
      case 'tools/call': {
        // A step whose action is the call's <tool_call> text; episode_id is ignored (the socket is the session).
        const req = parse(toolCallRequestSchema, data, 'data');
        const text = toolCallText(req.name, req.arguments, 'data');
        send({ type: 'tools/call', data: toolCallResult(await timed('step', () => table.step(session, text, req.request_id))) });
        return;
      }
      case 'state':
        send({ type: 'state', data: table.state(session) });
        return;
      case 'close':
        socket.close(1000, 'closed by client');
        return;
      default:
        throw new EnvServerError(400, 'UNKNOWN_TYPE', `type: expected "reset", "step", "tools/call", "state" or "close" but received ${JSON.stringify(type)}`);
    }
  };

  socket.on('message', (data, isBinary) => {
    if (isBinary) return sendError(new EnvServerError(400, 'INVALID_JSON', 'binary frames are not accepted: send JSON text'));
    if (pending >= MAX_PENDING) return sendError(new EnvServerError(429, 'SESSION_BUSY', `more than ${MAX_PENDING} messages in flight on this socket: wait for answers`));
    pending++;
    const raw = data.toString();
    chain = chain.then(async () => {
      try {
        if (!closed) await handle(raw);
      } catch (err) {
        sendError(err);
      } finally {
        pending--;
      }
    });
  });
  socket.on('close', () => {
    closed = true;
    table.delete(session.id);
  });
  socket.on('error', () => socket.terminate());
}

/** Our errors as they are; anything else is the server's fault and is reported without internals. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof EnvServerError) return { code: err.code, message: err.message };
  return { code: 'EXECUTION_ERROR', message: `internal error: ${err instanceof Error ? err.message : String(err)}` };
}
