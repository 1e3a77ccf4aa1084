// Server-sent events of a streaming completion: a role chunk per choice, then after each decode step
// one chunk per choice with its new text (and ids), the last with its finish_reason (and tool_calls
// in tools mode), an optional usage chunk, and `data: [DONE]`.
import type { ServerResponse } from 'node:http';
import type { Job } from './job';
import type { OpenAIError } from './errors';
import { chunk, finalChoice, tokenLogprobs, usage, type CompletionMeta } from './responses';

export class CompletionStream {
  private readonly sentIds: number[];
  private readonly ended: boolean[];

  constructor(
    private readonly meta: CompletionMeta,
    private readonly raw: ServerResponse,
    private readonly includeUsage: boolean,
    n: number,
  ) {
    this.sentIds = new Array<number>(n).fill(0);
    this.ended = new Array<boolean>(n).fill(false);
  }

  private write(obj: unknown): void {
    if (!this.raw.writableEnded && !this.raw.destroyed) this.raw.write(`data: ${JSON.stringify(obj)}\n\n`);
  }

  start(): void {
    this.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const choices = this.ended.map((_, index) => ({ index, delta: { role: 'assistant', content: '' }, finish_reason: null }));
    this.write(chunk(this.meta, choices, this.meta.returnTokenIds ? { prompt_token_ids: this.meta.promptTokens } : {}));
  }

  /** Writes what the last step gave each choice. */
  step(job: Job): void {
    for (const c of job.choices) {
      if (this.ended[c.index]) continue;
      const ids = c.text.ids.slice(this.sentIds[c.index]);
      const logp = c.logp.slice(this.sentIds[c.index]);
      this.sentIds[c.index] = c.text.ids.length;
      const delta: Record<string, unknown> = {};
      let finish: string | null = null;
      let extra: Record<string, unknown> = {};
      if (c.finish !== undefined) {
        const f = finalChoice(this.meta, c);
        const rest = c.text.rest(f.content ?? '');
        if (rest) delta.content = rest;
        if (f.toolCalls.length) delta.tool_calls = f.toolCalls.map((t, index) => ({ index, ...t }));
        finish = f.finishReason;
        extra = { medgym_finish_reason: f.medgymFinishReason };
        this.ended[c.index] = true;
      } else {
        const d = c.text.delta();
        if (d) delta.content = d;
      }
      if (!delta.content && !delta.tool_calls && finish === null && !((this.meta.returnTokenIds || this.meta.logprobs) && ids.length)) continue;
      const perToken = {
        ...(this.meta.returnTokenIds ? { token_ids: ids } : {}),
        ...(this.meta.logprobs ? { logprobs: { content: tokenLogprobs(ids, logp, job.input.decoder) } } : {}),
      };
      this.write(chunk(this.meta, [{ index: c.index, delta, finish_reason: finish, ...perToken, ...extra }]));
    }
  }

  end(job: Job): void {
    if (this.includeUsage) this.write(chunk(this.meta, [], { usage: usage(this.meta, job) }));
    this.close();
  }

  /** An error after the stream started: one error event (OpenAI's shape), then the end. */
  fail(err: OpenAIError): void {
    this.write(err.body());
    this.close();
  }

  private close(): void {
    if (this.raw.writableEnded || this.raw.destroyed) return;
    this.raw.write('data: [DONE]\n\n');
    this.raw.end();
  }
}
