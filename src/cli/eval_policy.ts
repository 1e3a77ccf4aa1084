// `medgym eval --policy http://host:port/v1 --model NAME`: a model served behind an OpenAI-compatible
// API (vLLM, SGLang, llama.cpp, Ollama, `medgym serve`) evaluated on the env of the flags, as
// `medgym eval --model <hf-dir>` evaluates a local one (evalOnEnv). The API key comes from an
// environment variable, never from a flag value (flags end up in shell histories and process lists).
import { HttpPolicy, type HttpPolicyOptions } from '../policy/openai';
import { evalOnEnv, LIFT_TURN_CAP, oneOf, viewSizeFlag, type EvalAnyFlags } from './eval_model';

export type EvalPolicyFlags = Omit<EvalAnyFlags, 'checkpoint'> & { policy: string; model: string };

const PROTOCOLS = ['auto', 'medgym-vlm', 'chat'] as const;
const TOOL_FORMATS = ['openai', 'text'] as const;

function positive(flag: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new RangeError(`Expected ${integer ? 'an integer' : 'a number'} > 0 for --${flag} but received ${JSON.stringify(v)}`);
  return n;
}

/** HttpPolicy options of the flags (the API key from --api-key-env, default OPENAI_API_KEY, when set). */
export function httpPolicyOptions(f: EvalPolicyFlags, env: NodeJS.ProcessEnv = process.env): HttpPolicyOptions {
  const keyVar = f.apiKeyEnv ?? 'OPENAI_API_KEY';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyVar)) throw new RangeError(`Expected an environment variable name for --api-key-env but received ${JSON.stringify(keyVar)}`);
  if (f.apiKeyEnv !== undefined && !env[keyVar]) throw new RangeError(`--api-key-env ${keyVar}: the variable is not set`);
  const apiKey = env[keyVar] || undefined;
  return {
    protocol: oneOf('protocol', f.protocol, PROTOCOLS, 'auto'),
    toolFormat: oneOf('tool-format', f.toolFormat, TOOL_FORMATS, 'openai'),
    concurrency: positive('concurrency', f.concurrency, true),
    timeoutSeconds: positive('timeout', f.timeout, false),
    ...(apiKey ? { apiKey } : {}),
  };
}

export async function evalPolicyCommand(f: EvalPolicyFlags): Promise<number> {
  const options = httpPolicyOptions(f);
  const viewSize = viewSizeFlag(f.viewSize);
  return evalOnEnv(f, async () => {
    const policy = await HttpPolicy.connect(f.policy, f.model, options);
    const info = policy.modelInfo;
    if (policy.protocol === 'medgym-vlm') {
      // Same token space as the env: its per-turn cap stays; the views must be what the model takes.
      if (viewSize !== undefined && info?.image_size !== undefined && viewSize !== info.image_size) {
        policy.dispose();
        throw new RangeError(`--view-size ${viewSize}: the served medgym-vlm model takes ${info.image_size}-pixel views`);
      }
      const envExtra = { ...(info?.image_size ? { viewSize: info.image_size } : {}), ...(info?.channels === 1 ? { viewChannels: 1 as const } : {}) };
      return { policy, label: f.model, envExtra };
    }
    return { policy, label: f.model, envExtra: { ...LIFT_TURN_CAP, ...(viewSize ? { viewSize } : {}) } };
  });
}
