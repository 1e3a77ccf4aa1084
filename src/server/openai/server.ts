// `medgym serve`: a native model behind OpenAI's chat-completions API (docs/serve.md) — a medgym-vlm
// checkpoint or a Qwen2-VL / Qwen2.5-VL directory (./served_model.ts). fastify app + auth (loopback
// by default, a bearer token for anything else) + the continuous-batching scheduler over one model
// engine. Client mistakes are 4xx in OpenAI's error shape.
import fastify, { LogController, type FastifyInstance } from 'fastify';
import { checkExposure, installAuth } from '../auth';
import { EnvServerError } from '../errors';
import { registerChatRoute } from './chat_route';
import { OpenAIError, fromFastifyError } from './errors';
import { modelEntry, registerModelRoutes } from './models_route';
import { MedgymServedModel, type ServablePolicy } from './medgym_model';
import { Scheduler } from './scheduler';
import type { ServedModel } from './served_model';

export type { ServablePolicy } from './medgym_model';

export interface OpenAIServerOptions {
  /** A medgym-vlm policy (or give `model`); the server owns it from now on (close() disposes it). */
  policy?: ServablePolicy;
  /** Any served model (QwenServedModel, …), instead of `policy`; owned by the server as well. */
  model?: ServedModel;
  /** Model id clients name (`model`). */
  name: string;
  /** Interface to bind (the caller's listen() uses it). Default 127.0.0.1; any other needs `token`. */
  host?: string;
  /** Bearer token required on every route but /health. */
  token?: string;
  /** Sequences decoding at once (choices of all admitted requests). Default 32. */
  maxBatch?: number;
  /** Requests waiting for a place in the batch; more are refused with 429. Default 256. */
  maxQueue?: number;
  /** Largest request body, bytes (images travel inside it). Default 32 MiB. */
  bodyLimit?: number;
  /** Messages per request at most. Default 512. */
  maxMessages?: number;
  /** Images per request at most. Default 64. */
  maxImages?: number;
  /** `n` at most. Default min(16, maxBatch). */
  maxChoices?: number;
  /** One JSON line per request on stdout (method, path, status, ms; never headers). Default off. */
  logger?: boolean;
  /** `created` of the model entry (unix seconds). Default: now. */
  created?: number;
}

export interface OpenAIServer {
  /** Not yet listening: call app.listen({ host: server.host, port }) or app.inject(). */
  readonly app: FastifyInstance;
  readonly host: string;
  readonly scheduler: Scheduler;
  /**
   * Stops: new requests get 503, in-flight ones finish ('finish', default) or end with an error
   * ('abort'); then the listener closes and the model is disposed.
   */
  close(mode?: 'finish' | 'abort'): Promise<void>;
}

const positiveInt = (name: string, v: number): number => {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`Expected a positive integer for ${name} but received ${v}`);
  return v;
};

function toOpenAIError(err: unknown): OpenAIError | undefined {
  if (err instanceof OpenAIError) return err;
  if (err instanceof EnvServerError) {
    return new OpenAIError(err.status, err.status === 401 ? 'authentication_error' : 'invalid_request_error', err.message, null, err.code.toLowerCase());
  }
  return fromFastifyError(err as { statusCode?: number; code?: string; message: string });
}

export function createOpenAIServer(options: OpenAIServerOptions): OpenAIServer {
  const host = options.host ?? '127.0.0.1';
  checkExposure(host, options.token);
  if ((options.policy === undefined) === (options.model === undefined)) throw new RangeError('Expected exactly one of policy (medgym-vlm) and model');
  const model: ServedModel = options.model ?? new MedgymServedModel(options.policy!);
  const { name } = options;
  if (typeof name !== 'string' || name.length === 0) throw new RangeError(`Expected a non-empty string for name but received ${JSON.stringify(name)}`);
  const maxBatch = positiveInt('maxBatch', options.maxBatch ?? 32);
  const maxQueue = positiveInt('maxQueue', options.maxQueue ?? 256);
  const bodyLimit = positiveInt('bodyLimit', options.bodyLimit ?? 32 * 2 ** 20);
  const maxChoices = positiveInt('maxChoices', options.maxChoices ?? Math.min(16, maxBatch));
  if (maxChoices > maxBatch) throw new RangeError(`Expected maxChoices <= maxBatch (${maxBatch}) but received ${maxChoices}`);
  const scheduler = new Scheduler(model.createEngine(), { maxBatch, maxQueue });

  const app = fastify({
    logger: options.logger ? { level: 'info', serializers: { req: (r: { method?: string; url?: string }) => ({ method: r.method, path: r.url?.split('?')[0] }) } } : false,
    logController: new LogController({ disableRequestLogging: true }), // the onResponse hook writes one line per request
    bodyLimit,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });
  app.setErrorHandler((err, req, reply) => {
    const e = toOpenAIError(err);
    if (e && e.status < 500) return reply.code(e.status).send(e.body());
    req.log.error(err);
    const out = e ?? new OpenAIError(500, 'server_error', 'internal error (see the server log)');
    return reply.code(out.status).send(out.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new OpenAIError(404, 'not_found_error', `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}`, null, 'unknown_route');
    reply.code(404).send(e.body());
  });
  if (options.logger) {
    app.addHook('onResponse', async (req, reply) => {
      req.log.info({ method: req.method, path: req.url.split('?')[0].slice(0, 200), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 1000) / 1000 }, 'request');
    });
  }

  const entry = modelEntry(name, model.info, options.created ?? Math.floor(Date.now() / 1000));
  void app.register(async (scope) => {
    if (options.token) installAuth(scope, options.token);
    registerModelRoutes(scope, entry, scheduler);
    registerChatRoute(scope, {
      modelName: name,
      model,
      scheduler,
      limits: { maxMessages: positiveInt('maxMessages', options.maxMessages ?? 512), maxImages: positiveInt('maxImages', options.maxImages ?? 64) },
      sampling: { ...model.sampling, maxChoices },
    });
  });

  let closed: Promise<void> | undefined;
  return {
    app,
    host,
    scheduler,
    close(mode = 'finish') {
      closed ??= (async () => {
        try {
          await Promise.all([scheduler.close(mode), app.close()]);
        } finally {
          model.dispose();
        }
      })();
      return closed;
    },
  };
}
