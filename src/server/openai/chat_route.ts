// POST /v1/chat/completions: validate, render and decode the prompt, plan the sampling, hand the job
// to the scheduler; answer with one chat.completion or (stream: true) server-sent chunks. A client
// that disconnects cancels its sequences.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { invalid, OpenAIError } from './errors';
import { parseChatRequest } from './request_schema';
import { completionResponse, type CompletionMeta } from './responses';
import { samplingPlan, type SamplingLimits } from './sampling';
import type { Scheduler } from './scheduler';
import type { RequestLimits, ServedModel } from './served_model';
import { CompletionStream } from './stream';

export interface ChatRouteContext {
  modelName: string;
  model: ServedModel;
  scheduler: Scheduler;
  limits: RequestLimits;
  sampling: SamplingLimits;
}

export function registerChatRoute(app: FastifyInstance, ctx: ChatRouteContext): void {
  app.post('/v1/chat/completions', async (req, reply) => {
    const body = parseChatRequest(req.body);
    if (body.model !== ctx.modelName) {
      throw new OpenAIError(404, 'not_found_error', `model ${JSON.stringify(body.model)} does not exist; this server serves ${JSON.stringify(ctx.modelName)}`, 'model', 'model_not_found');
    }
    if (body.top_logprobs) throw invalid('top_logprobs', 'only 0 is supported: logprobs: true reports each sampled token\'s log-prob, not the alternatives');
    const prompt = await ctx.model.buildPrompt(body, ctx.limits);
    const plan = samplingPlan(body, prompt.positions, ctx.sampling);
    const meta: CompletionMeta = {
      id: `chatcmpl-${randomUUID().replace(/-/g, '')}`,
      created: Math.floor(Date.now() / 1000),
      model: ctx.modelName,
      promptPositions: prompt.positions,
      promptTokens: prompt.tokens,
      returnTokenIds: body.return_token_ids ?? false,
      logprobs: body.logprobs ?? false,
      toolsMode: (body.tools?.length ?? 0) > 0 && body.tool_choice !== 'none',
    };
    const input = { tokens: prompt.tokens, images: prompt.images, plan, toolsMode: meta.toolsMode, decoder: ctx.model.decoder };

    if (!body.stream) {
      const job = ctx.scheduler.submit(input);
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) job.cancel();
      });
      if (req.raw.socket.destroyed) job.cancel(); // gone while its images were decoded
      await job.done;
      return completionResponse(meta, job);
    }

    const stream = new CompletionStream(meta, reply.raw, body.stream_options?.include_usage ?? false, plan.n);
    // Submitted before the headers go out, so that a full queue is still an ordinary 429.
    const job = ctx.scheduler.submit({ ...input, onStep: (j) => stream.step(j) });
    reply.hijack();
    stream.start();
    reply.raw.on('close', () => {
      if (!job.finished) job.cancel();
    });
    if (req.raw.socket.destroyed) job.cancel();
    try {
      await job.done;
      stream.end(job);
    } catch (err) {
      stream.fail(err instanceof OpenAIError ? err : new OpenAIError(500, 'server_error', 'internal error (see the server log)'));
    }
  });
}
