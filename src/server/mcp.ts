// POST /mcp: the env as an MCP server (Model Context Protocol, streamable HTTP transport with JSON
// responses; no server-sent events). `initialize` opens an env session whose id comes back in the
// Mcp-Session-Id header; the session's tools are the env's image tools plus `reset` (start an
// episode: the question and the image) and `answer` (end it). Every tool call is exactly a step or
// a reset of the session, so an MCP client (an agent, an IDE) drives the same episodes as a trainer.
// Transport mistakes (no session, unknown session, bad JSON-RPC) are 4xx; a JSON-RPC method or
// params error is a JSON-RPC error (HTTP 200, as MCP servers answer them); a tool that cannot run
// (no episode yet, the episode is over, invalid arguments) is a result with isError, as MCP asks.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toolJsonSchemas, TOOL_NAMES } from '../tools/schemas';
import { EnvServerError } from './errors';
import type { ImageContent, WireStep } from './observation';
import type { Session, SessionTable } from './sessions';
import { toolCallResult, toolCallText } from './tools_call';

/** Newest first; an initialize asking for another gets the newest (MCP version negotiation). */
export const MCP_PROTOCOL_VERSIONS = ['2025-06-18', '2025-03-26', '2024-11-05'] as const;
/** Longest `answer` argument (the env caps answers near the longest option anyway). */
const MAX_ANSWER_CHARS = 200;

type RpcId = string | number;
interface RpcMessage {
  jsonrpc: '2.0';
  id?: RpcId;
  method: string;
  params?: Record<string, unknown>;
}

// JSON-RPC 2.0 error codes, and MCP's use of the server range for an unknown session.
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;
const SESSION_NOT_FOUND = -32001;
const SERVER_ERROR = -32000;
const INTERNAL_ERROR = -32603;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function rpcError(reply: FastifyReply, status: number, id: RpcId | null, code: number, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ jsonrpc: '2.0', id, error: { code, message } });
}

/** The MCP tool list: the env's tools, then reset and answer. */
export function mcpTools(): { name: string; description: string; inputSchema: unknown }[] {
  return [
    {
      name: 'reset',
      description: 'Start an episode: returns the question (with its options and the original image size) and the image. Call it first, and again after an answer for the next episode.',
      inputSchema: {
        type: 'object',
        properties: {
          seed: { type: 'integer', minimum: 0, description: 'restart the episode stream at this seed (same seed, same item)' },
          index: { type: 'integer', minimum: 0, description: 'item index in the task source' },
          env: { type: 'string', description: 'env id (the server default when omitted)' },
          dataset: { type: 'string', description: 'a dataset the server declares (NAME or NAME:test)' },
        },
        additionalProperties: false,
      },
    },
    ...toolJsonSchemas().map((t) => ({ name: t.name, description: t.description, inputSchema: stripSchema(t.parameters) })),
    {
      name: 'answer',
      description: 'Give the final answer (one option letter, or the option text for open questions). Ends the episode; the result says whether it was correct (reward).',
      inputSchema: { type: 'object', properties: { answer: { type: 'string', maxLength: MAX_ANSWER_CHARS } }, required: ['answer'], additionalProperties: false },
    },
  ];
}

function stripSchema(p: unknown): unknown {
  if (!isObject(p)) return p;
  const { $schema: _drop, ...rest } = p;
  void _drop;
  return rest;
}

/** MCP content of a step: text, then the views as MCP ImageContent (our size and hash in _meta). */
function content(text: string, images: ImageContent[]): unknown[] {
  return [{ type: 'text', text }, ...images.map((im) => ({ type: 'image', data: im.data ?? '', mimeType: im.mimeType, _meta: { w: im.w, h: im.h, channels: im.channels, sha256: im.sha256 } }))];
}

const stepMeta = (s: WireStep): Record<string, unknown> => ({ reward: s.reward, done: s.done, terminated: s.metadata.terminated, truncated: s.metadata.truncated, info: s.metadata.info });

const toolError = (message: string): Record<string, unknown> => ({ content: [{ type: 'text', text: message }], isError: true });

/** Runs one MCP tool call on session `s`; EnvServerErrors of the episode's state become isError results. */
async function callTool(sessions: SessionTable, s: Session, name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  try {
    if (name === 'reset') {
      const { seed, index, env, dataset } = args;
      const bad = Object.keys(args).filter((k) => !['seed', 'index', 'env', 'dataset'].includes(k));
      if (bad.length) return toolError(`reset: unknown argument ${bad.join(', ')} (seed, index, env, dataset)`);
      const int = (v: unknown): boolean => v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0);
      if (!int(seed) || !int(index)) return toolError('reset: seed and index must be non-negative integers');
      if ((env !== undefined && typeof env !== 'string') || (dataset !== undefined && typeof dataset !== 'string')) return toolError('reset: env and dataset must be strings');
      const task = { env: env as string | undefined, dataset: dataset as string | undefined };
      const next = sessions.switchFor(s, task);
      const live = next ? sessions.switchEnv(s, next) : s;
      const r = await sessions.reset(live, { seed: seed as number | undefined, options: { images: 'inline', ...(index !== undefined ? { index: index as number } : {}) } });
      return { content: content(r.observation.text, r.observation.images), isError: false, structuredContent: { episode_id: live.id, ...stepMeta(r) } };
    }
    if (name === 'answer') {
      const a = args.answer;
      if (typeof a !== 'string' || a.length === 0 || a.length > MAX_ANSWER_CHARS || /[<>]/.test(a)) return toolError(`answer: expected a non-empty string of at most ${MAX_ANSWER_CHARS} characters without < or >`);
      const r = await sessions.step(s, `<answer>${a}</answer>`);
      return { content: content(r.observation.text || `episode over: reward ${r.reward}`, r.observation.images), isError: false, structuredContent: stepMeta(r) };
    }
    const r = toolCallResult(await sessions.step(s, toolCallText(name, args, 'params')));
    const text = r.content.find((c): c is { type: 'text'; text: string } => c.type === 'text')?.text ?? '';
    return { content: content(text, r.observation.images), isError: r.isError, structuredContent: stepMeta(r) };
  } catch (err) {
    if (err instanceof EnvServerError && err.status < 500) return toolError(`${err.code}: ${err.message}`);
    throw err;
  }
}

export function registerMcp(app: FastifyInstance, sessions: SessionTable, version: string): void {
  app.get('/mcp', async (_req, reply) => reply.code(405).header('allow', 'POST, DELETE').send({ error: { code: 'VALIDATION_ERROR', message: 'GET /mcp: this server sends no event stream; POST JSON-RPC messages' } }));

  app.delete('/mcp', async (req, reply) => {
    const sid = sessionHeader(req);
    if (sid === undefined) throw new EnvServerError(400, 'VALIDATION_ERROR', 'header.mcp-session-id: required');
    sessions.get(sid, 'http'); // 404 for an unknown one
    sessions.delete(sid);
    return reply.code(204).send();
  });

  // Errors before the handler (unparseable JSON, an oversized body) and server errors, as JSON-RPC errors.
  const errorHandler = (err: Error & { statusCode?: number; code?: string }, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (err instanceof EnvServerError) return rpcError(reply, err.status, null, SERVER_ERROR, `${err.code}: ${err.message}`);
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      req.log.error(err);
      return rpcError(reply, 500, null, INTERNAL_ERROR, 'internal error (see the server log)');
    }
    const parse = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError;
    return rpcError(reply, status, null, parse ? PARSE_ERROR : INVALID_REQUEST, err.message);
  };

  app.post('/mcp', { errorHandler }, async (req, reply) => {
    const msg = req.body;
    if (Array.isArray(msg)) return rpcError(reply, 400, null, INVALID_REQUEST, 'batches are not supported: one JSON-RPC message per request');
    if (!isObject(msg) || msg.jsonrpc !== '2.0' || typeof msg.method !== 'string') return rpcError(reply, 400, null, INVALID_REQUEST, 'expected a JSON-RPC 2.0 message {"jsonrpc": "2.0", "method": ..., "id"?: ..., "params"?: {...}}');
    const m = msg as unknown as RpcMessage;
    const notification = !('id' in msg);
    if (!notification && !(typeof m.id === 'string' || Number.isSafeInteger(m.id))) return rpcError(reply, 400, null, INVALID_REQUEST, 'id: expected a string or an integer');
    if (m.params !== undefined && !isObject(m.params)) return rpcError(reply, 400, m.id ?? null, INVALID_REQUEST, 'params: expected an object');
    const params = m.params ?? {};

    if (m.method === 'initialize') {
      if (notification) return rpcError(reply, 400, null, INVALID_REQUEST, 'initialize is a request: give it an id');
      const asked = params.protocolVersion;
      const protocolVersion = (MCP_PROTOCOL_VERSIONS as readonly unknown[]).includes(asked) ? (asked as string) : MCP_PROTOCOL_VERSIONS[0];
      const s = sessions.create('http', null);
      reply.header('mcp-session-id', s.id);
      return {
        jsonrpc: '2.0',
        id: m.id,
        result: {
          protocolVersion,
          capabilities: { tools: { listChanged: false } },
          serverInfo: { name: 'medgym', version },
          instructions: `Call reset to get a medical image and a question; look closer with the image tools (${TOOL_NAMES.join(', ')}); finish with answer. Coordinates are pixels of the original image, whose size the question states.`,
        },
      };
    }

    const sid = sessionHeader(req);
    if (sid === undefined) return rpcError(reply, 400, m.id ?? null, INVALID_REQUEST, 'header.mcp-session-id: required (the initialize answer gives one)');
    let s: Session;
    try {
      s = sessions.get(sid, 'http');
    } catch (err) {
      if (err instanceof EnvServerError && err.status === 404) return rpcError(reply, 404, m.id ?? null, SESSION_NOT_FOUND, `${err.message}: initialize again`);
      throw err;
    }
    if (notification) return reply.code(202).send(); // notifications/initialized, cancelled, …: nothing to answer

    switch (m.method) {
      case 'ping':
        return { jsonrpc: '2.0', id: m.id, result: {} };
      case 'tools/list':
        return { jsonrpc: '2.0', id: m.id, result: { tools: mcpTools() } };
      case 'tools/call': {
        const name = params.name;
        const args = params.arguments ?? {};
        const known = ['reset', 'answer', ...TOOL_NAMES];
        if (typeof name !== 'string' || !known.includes(name)) return rpcError(reply, 200, m.id!, INVALID_PARAMS, `params.name: unknown tool ${JSON.stringify(String(name).slice(0, 100))}; tools: ${known.join(', ')}`);
        if (!isObject(args)) return rpcError(reply, 200, m.id!, INVALID_PARAMS, 'params.arguments: expected an object');
        return { jsonrpc: '2.0', id: m.id, result: await callTool(sessions, s, name, args) };
      }
      default:
        return rpcError(reply, 200, m.id!, METHOD_NOT_FOUND, `method ${JSON.stringify(m.method.slice(0, 100))} not found: initialize, ping, tools/list, tools/call`);
    }
  });
}

function sessionHeader(req: FastifyRequest): string | undefined {
  const v = req.headers['mcp-session-id'];
  return typeof v === 'string' && v.length > 0 && v.length <= 255 ? v : undefined;
}
