// `medgym serve`: a native medgym-vlm checkpoint (--checkpoint) or a Qwen2-VL / Qwen2.5-VL Hugging
// Face directory (--model) as an OpenAI-compatible endpoint (src/server/openai, docs/serve.md) on a
// port until SIGINT/SIGTERM, which finish the requests in flight and stop.
import * as path from 'node:path';
import { NativePolicy } from '../policy';
import type { PolicyDeviceRequest } from '../policy/types';
import { checkExposure } from '../server/auth';
import { MedgymServedModel } from '../server/openai/medgym_model';
import { QwenServedModel } from '../server/openai/qwen_model';
import { createOpenAIServer, type OpenAIServer } from '../server/openai/server';
import type { ServedModel } from '../server/openai/served_model';
import { oneOf, viewSizeFlag } from './eval_model';
import { stopOnSignals } from './stop_on_signals';

export interface ServeFlags {
  checkpoint?: string;
  /** A Hugging Face Qwen2-VL / Qwen2.5-VL model directory (instead of --checkpoint). */
  model?: string;
  /** --model: auto | bfloat16 | float32 (QwenLoadOptions.dtype). */
  weightsDtype?: string;
  /** --model: exact | bf16 (QwenLoadOptions.decodeMath). */
  decodeMath?: string;
  /** --model: side of the view whose positions /v1/models reports as image_tokens (default 64). */
  viewSize?: string;
  name?: string;
  host?: string;
  port?: string;
  token?: string;
  maxBatch?: string;
  maxQueue?: string;
  maxBody?: string;
  device?: string;
  log?: boolean;
}

const int = (v: string | undefined, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new RangeError(`Expected an integer in [${min}, ${max}] for --${name} but received ${JSON.stringify(v)}`);
  return n;
};

/** "32mb", "512kb", "1048576" → bytes (binary units). */
export function parseByteSize(v: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(v);
  const bytes = m ? Math.floor(Number(m[1]) * 1024 ** ['b', 'kb', 'mb', 'gb'].indexOf((m[2] ?? 'b').toLowerCase())) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new RangeError(`Expected a size like 32mb, 512kb or 1048576 for --${flag} but received ${JSON.stringify(v)}`);
  return bytes;
}

const DTYPES = ['auto', 'bfloat16', 'float32'] as const;
const DECODE_MATH = ['exact', 'bf16'] as const;
const QWEN_ONLY = ['weightsDtype', 'decodeMath', 'viewSize'] as const;
const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** Loads what the flags name: every flag is checked before (a model takes seconds to load). */
function modelLoader(f: ServeFlags, device: PolicyDeviceRequest): () => Promise<ServedModel> {
  if (f.model !== undefined) {
    if (device !== 'cpu') throw new RangeError(`--device ${device}: a --model (Qwen) runs on the CPU only`);
    const viewSize = viewSizeFlag(f.viewSize);
    const dtype = oneOf('weights-dtype', f.weightsDtype, DTYPES, 'auto');
    const decodeMath = oneOf('decode-math', f.decodeMath, DECODE_MATH, 'exact');
    const dir = f.model;
    return () => QwenServedModel.load(dir, { viewSize, load: { dtype, decodeMath } });
  }
  for (const k of QWEN_ONLY) if (f[k] !== undefined) throw new RangeError(`--${kebab(k)} goes with --model (a Qwen directory), not --checkpoint`);
  const file = f.checkpoint!;
  return async () => new MedgymServedModel(await NativePolicy.load(file, { device }));
}

export async function serveCommand(f: ServeFlags): Promise<OpenAIServer> {
  if (!f.checkpoint === !f.model) throw new RangeError('Expected exactly one of --checkpoint <file.safetensors> (a medgym-vlm checkpoint) and --model <dir> (a Qwen2-VL / Qwen2.5-VL Hugging Face directory)');
  const port = int(f.port, 'port', 0, 65535) ?? 8000;
  const device = (f.device ?? 'cpu') as PolicyDeviceRequest;
  if (!['cpu', 'cuda', 'auto'].includes(device)) throw new RangeError(`Expected cpu, cuda or auto for --device but received ${JSON.stringify(f.device)}`);
  const load = modelLoader(f, device);
  const token = f.token ?? (process.env.MEDGYM_TOKEN || undefined);
  const name = f.name ?? (f.model ? path.basename(path.resolve(f.model)) : path.basename(f.checkpoint!).replace(/\.safetensors$/i, ''));
  const options = {
    name,
    host: f.host ?? '127.0.0.1',
    token,
    maxBatch: int(f.maxBatch, 'max-batch', 1, 4096),
    maxQueue: int(f.maxQueue, 'max-queue', 1),
    bodyLimit: f.maxBody === undefined ? undefined : parseByteSize(f.maxBody, 'max-body'),
    logger: f.log ?? false,
  };
  checkExposure(options.host, token); // before the model is loaded
  const model = await load();
  let server: OpenAIServer;
  try {
    server = createOpenAIServer({ ...options, model });
  } catch (err) {
    model.dispose();
    throw err;
  }
  let address: string;
  try {
    address = await server.app.listen({ host: server.host, port });
  } catch (err) {
    await server.close('abort').catch(() => undefined);
    throw err;
  }
  console.log(`medgym serve: ${name} (${model.info.protocol}, ${model.deviceName}) on ${address}/v1${token ? ', bearer token required' : ''}`);
  stopOnSignals(() => server.close('finish'), (signal) => `${signal}: finishing the requests in flight and stopping`);
  return server;
}
