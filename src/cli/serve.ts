// `medgym serve`: a native medgym-vlm checkpoint as an OpenAI-compatible endpoint (src/server/openai,
// docs/serve.md) on a port until SIGINT/SIGTERM, which finish the requests in flight and stop.
import * as path from 'node:path';
import { NativePolicy } from '../policy';
import type { PolicyDeviceRequest } from '../policy/types';
import { checkExposure } from '../server/auth';
import { createOpenAIServer, type OpenAIServer } from '../server/openai/server';

export interface ServeFlags {
  checkpoint?: string;
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

export async function serveCommand(f: ServeFlags): Promise<OpenAIServer> {
  if (!f.checkpoint) throw new RangeError('Expected --checkpoint <file.safetensors> (a medgym-vlm checkpoint)');
  const port = int(f.port, 'port', 0, 65535) ?? 8000;
  const device = (f.device ?? 'cpu') as PolicyDeviceRequest;
  if (!['cpu', 'cuda', 'auto'].includes(device)) throw new RangeError(`Expected cpu, cuda or auto for --device but received ${JSON.stringify(f.device)}`);
  const token = f.token ?? (process.env.MEDGYM_TOKEN || undefined);
  const name = f.name ?? path.basename(f.checkpoint).replace(/\.safetensors$/i, '');
  const options = {
    name,
    host: f.host ?? '127.0.0.1',
    token,
    maxBatch: int(f.maxBatch, 'max-batch', 1, 4096),
    maxQueue: int(f.maxQueue, 'max-queue', 1),
    bodyLimit: f.maxBody === undefined ? undefined : parseByteSize(f.maxBody, 'max-body'),
    logger: f.log ?? false,
  };
  checkExposure(options.host, token); // before the checkpoint is loaded
  const policy = await NativePolicy.load(f.checkpoint, { device });
  let server: OpenAIServer;
  try {
    server = createOpenAIServer({ ...options, policy });
  } catch (err) {
    policy.dispose();
    throw err;
  }
  let address: string;
  try {
    address = await server.app.listen({ host: server.host, port });
  } catch (err) {
    await server.close('abort').catch(() => undefined);
    throw err;
  }
  console.log(`medgym serve: ${name} (${policy.deviceInfo.name}) on ${address}/v1${token ? ', bearer token required' : ''}`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: finishing the requests in flight and stopping`);
    server.close('finish').then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return server;
}
