// A fake OpenAI-compatible server for the HttpPolicy tests: fastify on 127.0.0.1, port 0, closed after
// each test. It records every request (method, path, headers, JSON body), counts how many were in flight
// at once, lists `models` on GET /v1/models and answers POST /v1/chat/completions from a script.
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { ChatCompletionRequest, ModelEntry } from '../../../src/policy/openai';

export interface Recorded {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: ChatCompletionRequest;
}

/** What the script answers: a JSON body (or raw text), a status, headers, after a delay. */
export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a string as it is (text/plain). */
  body: unknown;
  delayMs?: number;
}

export interface Fake {
  /** Base URL, ending in /v1. */
  url: string;
  requests: Recorded[];
  /** Most chat requests in flight at once. */
  maxInFlight: number;
}

export const model = (id: string, medgym?: ModelEntry['medgym']): ModelEntry => ({ id, object: 'model', created: 0, owned_by: 'test', ...(medgym ? { medgym } : {}) });

/** A chat completion with one choice. */
export function completion(modelId: string, message: { content: string | null; tool_calls?: unknown[] }, extra: Record<string, unknown> = {}, finish = 'stop'): Record<string, unknown> {
  return {
    id: 'cmpl-1',
    object: 'chat.completion',
    created: 0,
    model: modelId,
    choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: finish, ...extra }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}

export const toolCall = (id: string, name: string, args: unknown) => ({ id, type: 'function', function: { name, arguments: JSON.stringify(args) } });

/** Starts a fake server per test (closed in afterEach). `chat` answers request n (0-based) of the chat route. */
export function useFake(): (o: { models?: ModelEntry[]; chat?: (req: Recorded, n: number) => Answer; modelsAnswer?: (n: number) => Answer }) => Promise<Fake> {
  const open: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((a) => a.close()));
  });
  return async ({ models = [model('m')], chat, modelsAnswer }) => {
    const app = Fastify({ bodyLimit: 64 << 20 });
    open.push(app);
    const fake: Fake = { url: '', requests: [], maxInFlight: 0 };
    let inFlight = 0;
    let chats = 0;
    let listed = 0;
    const send = async (reply: import('fastify').FastifyReply, a: Answer): Promise<unknown> => {
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      reply.code(a.status ?? 200).headers(a.headers ?? {});
      if (typeof a.body === 'string') return reply.type('text/plain').send(a.body);
      return reply.send(a.body);
    };
    app.get('/v1/models', async (req, reply) => {
      fake.requests.push({ method: 'GET', path: '/v1/models', headers: req.headers, body: undefined as unknown as ChatCompletionRequest });
      const a = modelsAnswer?.(listed++) ?? { body: { object: 'list', data: models } };
      return send(reply, a);
    });
    app.post('/v1/chat/completions', async (req, reply) => {
      const rec: Recorded = { method: 'POST', path: '/v1/chat/completions', headers: req.headers, body: req.body as ChatCompletionRequest };
      fake.requests.push(rec);
      inFlight++;
      fake.maxInFlight = Math.max(fake.maxInFlight, inFlight);
      try {
        if (!chat) throw new Error('no chat script');
        return await send(reply, chat(rec, chats++));
      } finally {
        inFlight--;
      }
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    fake.url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1`;
    return fake;
  };
}

/** The chat requests recorded, in arrival order. */
export const chats = (f: Fake): ChatCompletionRequest[] => f.requests.filter((r) => r.path.endsWith('/chat/completions')).map((r) => r.body);
