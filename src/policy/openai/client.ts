// The HTTP side of HttpPolicy: JSON over global fetch with a bearer key, a per-request timeout, retries
// (exponential backoff with jitter, Retry-After honoured) on network errors, 408, 429 and 5xx, and one
// concurrency limit across everything the policy sends. Errors are HttpPolicyError with the status, the
// URL and the server's own message; the API key never appears in them.

/** A request to the server failed (network, timeout, an HTTP error, or an answer that is not the expected JSON). */
export class HttpPolicyError extends Error {
  /** Always 'HttpPolicyError'. */
  override name = 'HttpPolicyError';
  constructor(
    message: string,
    /** The URL requested. */
    readonly url: string,
    /** HTTP status, when the server answered. */
    readonly status?: number,
    /** 'network' | 'timeout' | 'http' | 'malformed' | 'aborted'. */
    readonly kind: 'network' | 'timeout' | 'http' | 'malformed' | 'aborted' = 'http',
  ) {
    super(message);
  }
}

export interface TransportOptions {
  /** Bearer token (Authorization: Bearer …). Default none. */
  apiKey?: string;
  /** Seconds one attempt may take before it is aborted (default 120). Timeouts are not retried. */
  timeoutSeconds?: number;
  /** Retries after the first attempt on network errors, 408, 429 and 5xx (default 4). */
  retries?: number;
  /** Requests in flight at most, across the policy (default 8). */
  concurrency?: number;
  /** First backoff in ms (default 500), doubled per retry, with ±50 % jitter; capped at 30 s. */
  backoffMs?: number;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const MAX_WAIT_MS = 30_000;

/** A counting semaphore: at most `limit` holders; waiters run in arrival order. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((go) => this.waiting.push(go));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on: active stays the same
      else this.active--;
    }
  }
}

function positiveInt(v: unknown, name: string, min: number): number {
  if (!Number.isSafeInteger(v) || (v as number) < min) throw new RangeError(`Expected an integer >= ${min} for ${name} but received ${String(v)}`);
  return v as number;
}

/** Seconds (or an HTTP date) of a Retry-After header, in ms; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(header);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

/** The server's own words from an error body: OpenAI's {error: {message}}, vLLM's {message}, or the text. */
function serverMessage(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message ?? j.detail);
    if (typeof m === 'string') return m;
  } catch {
    /* not JSON: the text itself */
  }
  return body.slice(0, 300);
}

export class OpenAITransport {
  readonly baseURL: string;
  private readonly apiKey?: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly limiter: Limiter;
  /** Aborted by dispose(): every request in flight stops. */
  private readonly life = new AbortController();

  constructor(baseURL: string, o: TransportOptions = {}) {
    let u: URL;
    try {
      u = new URL(baseURL);
    } catch {
      throw new RangeError(`Expected an http(s) URL for baseURL but received ${JSON.stringify(baseURL)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RangeError(`Expected an http(s) URL for baseURL but received ${JSON.stringify(baseURL)}`);
    this.baseURL = baseURL.replace(/\/+$/, '');
    if (o.apiKey !== undefined && (typeof o.apiKey !== 'string' || o.apiKey.length === 0)) throw new TypeError('Expected a non-empty string for apiKey');
    this.apiKey = o.apiKey;
    const timeout = o.timeoutSeconds ?? 120;
    if (typeof timeout !== 'number' || !(timeout > 0) || !Number.isFinite(timeout)) throw new RangeError(`Expected a number > 0 for timeoutSeconds but received ${String(o.timeoutSeconds)}`);
    this.timeoutMs = timeout * 1000;
    this.retries = positiveInt(o.retries ?? 4, 'retries', 0);
    this.backoffMs = positiveInt(o.backoffMs ?? 500, 'backoffMs', 0);
    this.limiter = new Limiter(positiveInt(o.concurrency ?? 8, 'concurrency', 1));
  }

  get disposed(): boolean {
    return this.life.signal.aborted;
  }

  /** Aborts every request in flight; later ones throw. */
  dispose(): void {
    this.life.abort();
  }

  getJson(path: string): Promise<unknown> {
    return this.request('GET', path);
  }

  postJson(path: string, body: unknown): Promise<unknown> {
    return this.request('POST', path, JSON.stringify(body));
  }

  private async request(method: string, path: string, body?: string): Promise<unknown> {
    const url = this.baseURL + path;
    for (let attempt = 0; ; attempt++) {
      if (this.disposed) throw new HttpPolicyError(`${method} ${url}: the policy was disposed`, url, undefined, 'aborted');
      let wait: number | undefined;
      try {
        return await this.limiter.run(() => this.once(method, url, body));
      } catch (err) {
        if (!(err instanceof HttpPolicyError) || !retryable(err) || attempt >= this.retries) throw err;
        wait = (err as HttpPolicyError & { retryAfter?: number }).retryAfter;
      }
      const backoff = this.backoffMs * 2 ** attempt * (0.5 + Math.random());
      await this.sleep(Math.min(MAX_WAIT_MS, wait ?? backoff), url);
    }
  }

  private async once(method: string, url: string, body?: string): Promise<unknown> {
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), this.timeoutMs);
    const signal = AbortSignal.any([timer.signal, this.life.signal]);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method, headers, body, signal });
      text = await res.text();
    } catch (err) {
      if (this.life.signal.aborted) throw new HttpPolicyError(`${method} ${url}: the policy was disposed`, url, undefined, 'aborted');
      if (timer.signal.aborted) throw new HttpPolicyError(`${method} ${url}: no answer within ${this.timeoutMs / 1000} s (timeout)`, url, undefined, 'timeout');
      const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      throw new HttpPolicyError(`${method} ${url}: ${this.redact(cause)}`, url, undefined, 'network');
    } finally {
      clearTimeout(timeout);
    }
    if (!res.ok) {
      const e = new HttpPolicyError(`${method} ${url}: HTTP ${res.status}: ${this.redact(serverMessage(text))}`, url, res.status, 'http');
      Object.assign(e, { retryAfter: retryAfterMs(res.headers.get('retry-after')) });
      throw e;
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpPolicyError(`${method} ${url}: the answer is not JSON: ${JSON.stringify(this.redact(text.slice(0, 120)))}`, url, res.status, 'malformed');
    }
  }

  private sleep(ms: number, url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(t);
        reject(new HttpPolicyError(`${url}: the policy was disposed`, url, undefined, 'aborted'));
      };
      const t = setTimeout(() => {
        this.life.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      this.life.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A server may echo the request's headers in an error: never let the key through. */
  private redact(s: string): string {
    return this.apiKey ? s.split(this.apiKey).join('***') : s;
  }
}

function retryable(e: HttpPolicyError): boolean {
  return e.kind === 'network' || (e.kind === 'http' && e.status !== undefined && RETRY_STATUS.has(e.status));
}
