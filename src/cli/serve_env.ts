// `medgym serve-env`: the env server (src/server) on a port until SIGINT/SIGTERM.
import { createEnvServer, DEFAULT_ENV, type EnvServer } from '../server/env_server';

export interface ServeEnvFlags {
  host?: string;
  port?: string;
  token?: string;
  env?: string;
  maxSessions?: string;
  idleTimeout?: string;
}

const int = (v: string | undefined, name: string, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`Expected an integer >= ${min} for --${name} but received ${JSON.stringify(v)}`);
  return n;
};

/** Starts the server; resolves with it once listening (the process then lives until a signal). */
export async function serveEnvCommand(f: ServeEnvFlags): Promise<EnvServer> {
  const port = int(f.port, 'port', 0) ?? 8000;
  if (port > 65535) throw new RangeError(`Expected a port <= 65535 for --port but received ${port}`);
  const idle = int(f.idleTimeout, 'idle-timeout', 1);
  const server = createEnvServer({
    host: f.host,
    token: f.token ?? (process.env.MEDGYM_TOKEN || undefined),
    env: f.env ?? DEFAULT_ENV,
    maxSessions: int(f.maxSessions, 'max-sessions', 1),
    idleTimeoutMs: idle === undefined ? undefined : idle * 1000,
  });
  const address = await server.app.listen({ host: server.host, port });
  console.log(`medgym env server on ${address} (env ${f.env ?? DEFAULT_ENV}${f.token || process.env.MEDGYM_TOKEN ? ', bearer token required' : ''}); WebSocket ${address.replace(/^http/, 'ws')}/ws`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: closing sessions and stopping`);
    server.close().then(
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
