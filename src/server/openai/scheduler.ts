// Continuous batching of chat completions over one model engine (./engine.ts, docs/serve.md):
// waiting requests are prefilled together (one prefill for all of them, a fork per request with
// n > 1), then every live sequence advances one token per step — one engine step per group of equal
// sampling parameters — and requests join between steps. Each sequence samples from its own SPEC §7
// stream and the engines are batch-invariant, so a request gets the same tokens alone or among
// others, and a one-token step gives what one long generate() call would.
import type { ServeEngine } from './engine';
import { OpenAIError } from './errors';
import { Job, type Choice, type JobInput } from './job';

export interface SchedulerOptions {
  /** Sequences decoding at once (all choices of all admitted requests). */
  maxBatch: number;
  /** Requests waiting for admission at most; beyond it submit() throws a 429. */
  maxQueue: number;
}

type Live = { job: Job; choice: Choice & { seq: number } };

export class Scheduler {
  private waiting: Job[] = [];
  private active: Job[] = [];
  private running: Promise<void> | null = null;
  private closing = false;
  /** Requests stopped early (client gone, failure, abort) since the start. */
  private cancelledCount = 0;

  constructor(
    private readonly engine: ServeEngine,
    private readonly options: SchedulerOptions,
  ) {}

  get stats(): { waiting: number; active: number; sequences: number; cancelled: number } {
    return { waiting: this.waiting.length, active: this.active.length, sequences: this.live().length, cancelled: this.cancelledCount };
  }

  submit(input: JobInput): Job {
    if (this.closing) throw new OpenAIError(503, 'server_error', 'the server is shutting down', null, 'shutting_down');
    if (this.waiting.length >= this.options.maxQueue) {
      throw new OpenAIError(429, 'rate_limit_error', `too many requests waiting (${this.options.maxQueue}); retry later`, null, 'queue_full');
    }
    const job = new Job(input);
    this.waiting.push(job);
    this.kick();
    return job;
  }

  /** Stops taking requests; 'abort' fails the in-flight ones, 'finish' lets them complete. Then frees the engine. */
  async close(mode: 'finish' | 'abort'): Promise<void> {
    this.closing = true;
    const shuttingDown = new OpenAIError(503, 'server_error', 'the server is shutting down', null, 'shutting_down');
    if (mode === 'abort') for (const j of [...this.waiting, ...this.active]) j.cancel(shuttingDown);
    while (this.running) await this.running;
    this.engine.dispose();
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.loop().finally(() => {
      this.running = null;
      if (this.waiting.length || this.active.length) this.kick();
    });
  }

  private live(): Live[] {
    const out: Live[] = [];
    for (const job of this.active) for (const c of job.choices) if (c.seq !== undefined && c.finish === undefined) out.push({ job, choice: c as Live['choice'] });
    return out;
  }

  private async loop(): Promise<void> {
    for (;;) {
      this.reap();
      await this.admit();
      this.reap();
      const live = this.live();
      if (live.length === 0) return;
      await this.step(live);
    }
  }

  /** Releases the sequences of finished choices and of cancelled jobs; settles and drops done jobs. */
  private reap(): void {
    this.waiting = this.waiting.filter((j) => {
      if (j.cancelled) {
        j.fail(j.cancelled);
        this.cancelledCount++;
      }
      return !j.cancelled;
    });
    const release: number[] = [];
    for (const job of this.active) {
      for (const c of job.choices) {
        if (c.seq !== undefined && (c.finish !== undefined || job.cancelled)) {
          release.push(c.seq);
          c.seq = undefined;
        }
      }
      if (job.cancelled) {
        job.fail(job.cancelled);
        this.cancelledCount++;
      } else if (job.finished) job.resolve();
    }
    if (release.length) this.engine.release(release);
    this.active = this.active.filter((j) => !j.cancelled && !j.finished);
  }

  /** Prefills the waiting requests that fit in the batch, in arrival order, with one prefill. */
  private async admit(): Promise<void> {
    let room = this.options.maxBatch - this.live().length;
    const batch: Job[] = [];
    while (this.waiting.length && this.waiting[0].input.plan.n <= room) {
      const job = this.waiting.shift() as Job;
      room -= job.input.plan.n;
      batch.push(job);
    }
    if (!batch.length) return;
    this.active.push(...batch);
    let roots: number[];
    try {
      roots = await this.engine.prefill(batch.map((j) => ({ tokens: j.input.tokens, images: j.input.images, key: j.input.plan.keys[0] })));
    } catch (err) {
      for (const j of batch) j.cancel(internal(err));
      return;
    }
    for (let b = 0; b < batch.length; b++) {
      const job = batch[b];
      if (job.input.plan.n === 1) {
        job.choices[0].seq = roots[b];
        continue;
      }
      try {
        // Children forked right after add sample exactly what an add with their key would.
        const kids = await this.engine.fork(roots[b], job.input.plan.keys);
        kids.forEach((seq, j) => (job.choices[j].seq = seq));
      } catch (err) {
        job.cancel(internal(err));
      } finally {
        this.engine.release([roots[b]]);
      }
    }
  }

  /** One token for every live sequence: one engine step per group of equal sampling parameters. */
  private async step(live: Live[]): Promise<void> {
    const groups = new Map<string, Live[]>();
    for (const l of live) {
      const p = l.job.input.plan;
      const sig = JSON.stringify([p.temperature, p.topP, p.stopTokens, p.bannedTokens]);
      groups.set(sig, [...(groups.get(sig) ?? []), l]);
    }
    const stepped = new Set<Job>();
    for (const group of groups.values()) {
      const p = group[0].job.input.plan;
      let outs;
      try {
        outs = await this.engine.step(
          group.map((l) => l.choice.seq),
          { temperature: p.temperature, topP: p.topP, stopTokens: p.stopTokens, bannedTokens: p.bannedTokens },
        );
      } catch (err) {
        for (const l of group) l.job.cancel(internal(err));
        continue;
      }
      outs.forEach((o, k) => {
        const { job, choice } = group[k];
        const hitStopString = choice.text.push(o.tokens);
        for (let t = 0; t < o.logp.length; t++) choice.logp.push(o.logp[t]);
        if (o.finishReason === 'stop_token' || o.finishReason === 'max_seq') choice.finish = o.finishReason;
        else if (hitStopString) choice.finish = 'stop_string';
        // As one long generate() call reports it: the request's budget first, then the full context.
        else if (choice.text.ids.length >= job.input.plan.maxTokens) choice.finish = choice.text.ids.length >= job.input.plan.askedTokens ? 'max_new_tokens' : 'max_seq';
        stepped.add(job);
      });
    }
    for (const job of stepped) {
      if (job.cancelled) continue;
      try {
        job.input.onStep?.(job);
      } catch {
        job.cancel(); // its client cannot be written to: stop decoding for it
      }
    }
  }
}

function internal(err: unknown): OpenAIError {
  return new OpenAIError(500, 'server_error', `generation failed: ${err instanceof Error ? err.message : String(err)}`);
}
