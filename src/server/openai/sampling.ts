// A request's sampling fields → what the scheduler runs per choice: temperature, top-p, stops, bans,
// the token budget (what fits in the context) and each choice's SPEC §7 stream key. What differs by
// model (vocabulary, default stops and bans, counter support) comes in SamplingLimits.
import { invalid } from './errors';
import type { ChatRequest } from './request_schema';

/** A choice's stream (SampleKey with every field set). */
export interface ChoiceKey {
  seed: number;
  step: number;
  promptIndex: number;
  sampleIndex: number;
  counter: number;
}

export interface SamplingPlan {
  n: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  stopTokens: number[];
  bannedTokens: number[];
  /** Matched by the scheduler on each choice's whole decoded output; the text ends before the match. */
  stopStrings: string[];
  /** New tokens per choice at most (the request's, capped to what fits in the context). */
  maxTokens: number;
  /** The request's max_tokens (Infinity when it gave none): reaching it is 'max_new_tokens', the context's cap 'max_seq'. */
  askedTokens: number;
  keys: ChoiceKey[];
}

/** What a model fixes of sampling (ServedModel.sampling). */
export interface ModelSampling {
  vocabSize: number;
  maxSeq: number;
  /** Stop ids when the request gives no stop_token_ids (medgym-vlm: <|eos|>, </tool_call>). */
  defaultStopTokens: readonly number[];
  /** Stop ids always, added to the request's (Qwen: the model's end ids). */
  requiredStopTokens: readonly number[];
  /** Ids never sampled; logit_bias -100 adds to them. */
  bannedTokens: readonly number[];
}

export interface SamplingLimits extends ModelSampling {
  /** Choices per request at most (n). */
  maxChoices: number;
}

function bans(bias: Record<string, number> | null | undefined, base: readonly number[], V: number): number[] {
  const out = new Set(base);
  for (const [k, v] of Object.entries(bias ?? {})) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || id >= V) throw invalid(`logit_bias.${k}`, `expected a token id in [0, ${V}) as the key`);
    if (v !== -100) throw invalid(`logit_bias.${k}`, `only -100 (never sample this token) is supported, received ${v}`, 'unsupported_logit_bias');
    out.add(id);
  }
  return [...out];
}

/** `promptPositions`: context positions the prompt takes. */
export function samplingPlan(req: ChatRequest, promptPositions: number, limits: SamplingLimits): SamplingPlan {
  const n = req.n ?? 1;
  if (n > limits.maxChoices) throw invalid('n', `at most ${limits.maxChoices} choices per request, received ${n}`);
  req.stop_token_ids?.forEach((id, k) => {
    if (id >= limits.vocabSize) throw invalid(`stop_token_ids[${k}]`, `expected a token id in [0, ${limits.vocabSize}) but received ${id}`);
  });
  // The given list replaces the default set (as GenerateOptions.stopTokens); the required ids stay.
  const stopTokens = [...new Set([...limits.requiredStopTokens, ...(req.stop_token_ids ?? limits.defaultStopTokens)])];
  const fits = limits.maxSeq - promptPositions;
  const asked = req.max_completion_tokens ?? req.max_tokens ?? Infinity;
  const base = req.medgym_sample_key ?? { seed: req.seed ?? 0, step: 0, prompt_index: 0, sample_index: 0, counter: 0 };
  return {
    n,
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    stopTokens,
    bannedTokens: bans(req.logit_bias, limits.bannedTokens, limits.vocabSize),
    stopStrings: req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop,
    maxTokens: Math.min(asked, fits),
    askedTokens: asked,
    keys: Array.from({ length: n }, (_, j) => ({
      seed: base.seed,
      step: base.step,
      promptIndex: base.prompt_index,
      sampleIndex: base.sample_index + j,
      counter: base.counter,
    })),
  };
}
