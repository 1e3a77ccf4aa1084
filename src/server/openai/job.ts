// One chat-completion request inside the scheduler: its prompt, sampling plan and choices (each a
// session sequence while it decodes), a promise settled when every choice is done, and the
// per-step callback that streaming responses write from.
import type { MedgymFinishReason } from '../../policy/openai/types';
import type { ViewImage } from '../../tools/image';
import type { ChoiceDecoder } from './choice_decoder';
import { ChoiceText } from './choice_text';
import type { SamplingPlan } from './sampling';

export interface Choice {
  index: number;
  text: ChoiceText;
  /** Log-prob of each id of text.ids (logprobs: true reports them). */
  logp: number[];
  /** Session sequence while it decodes; undefined before admission and after release. */
  seq?: number;
  finish?: MedgymFinishReason;
}

export interface JobInput {
  tokens: number[];
  images: ViewImage[];
  plan: SamplingPlan;
  /** Hold streamed text from the first <tool_call> on (tools mode). */
  toolsMode: boolean;
  /** The model's ids → text. */
  decoder: ChoiceDecoder;
  /** After each decode step that gave this job tokens (streaming writes its chunks here). */
  onStep?: (job: Job) => void;
}

export class Job {
  readonly choices: Choice[];
  /** Why the job stops early (client gone, server closing); its promise rejects with it. */
  cancelled: Error | undefined;
  /** Settles once every choice is done (or rejects: cancelled, failed, server closing). */
  readonly done: Promise<void>;
  private settle!: { resolve: () => void; reject: (e: Error) => void };
  private settled = false;

  constructor(readonly input: JobInput) {
    this.choices = Array.from({ length: input.plan.n }, (_, index) => ({ index, text: new ChoiceText(input.plan.stopStrings, input.toolsMode, input.decoder), logp: [] }));
    this.done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => undefined); // a cancelled job's rejection may have no listener
  }

  get finished(): boolean {
    return this.choices.every((c) => c.finish !== undefined);
  }

  /** Stops the job (the client went away, …): the scheduler releases its sequences before its next step. */
  cancel(reason: Error = new Error('request cancelled')): void {
    this.cancelled ??= reason;
  }

  resolve(): void {
    if (this.settled) return;
    this.settled = true;
    this.settle.resolve();
  }

  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.settle.reject(err);
  }
}
