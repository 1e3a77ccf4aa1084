// Client-facing errors of the env server: an HTTP status, a stable code and one sentence naming the
// field or problem. Routes and the WebSocket handler throw these; one handler turns them into
// {"error": {"code", "message"}} (HTTP) or {"type": "error", "data": {code, message}} (WebSocket).

export type ErrorCode =
  | 'INVALID_JSON'
  | 'VALIDATION_ERROR'
  | 'UNKNOWN_TYPE'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'NO_EPISODE'
  | 'EPISODE_DONE'
  | 'SESSION_BUSY'
  | 'CAPACITY_REACHED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'EXECUTION_ERROR';

export class EnvServerError extends Error {
  override readonly name = 'EnvServerError';
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

/** Fastify's own 4xx errors (parser, body limit, media type) mapped to our codes; others → undefined. */
export function fromFastifyError(err: { statusCode?: number; code?: string; message: string }): EnvServerError | undefined {
  const status = err.statusCode ?? 500;
  if (status < 400 || status >= 500) return undefined;
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new EnvServerError(400, 'INVALID_JSON', err.message);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new EnvServerError(413, 'PAYLOAD_TOO_LARGE', err.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new EnvServerError(status, 'UNSUPPORTED_MEDIA_TYPE', `${err.message} (send Content-Type: application/json)`);
    default:
      // JSON.parse's SyntaxError comes through with statusCode 400 and no FST code.
      return new EnvServerError(status, status === 400 ? 'INVALID_JSON' : 'VALIDATION_ERROR', err.message);
  }
}
