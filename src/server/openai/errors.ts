// Client-facing errors of `medgym serve` in OpenAI's shape: {"error": {message, type, param, code}}
// with a 4xx status, so that the official clients raise their typed errors (BadRequestError, …).
// Routes and the scheduler throw OpenAIError; one handler renders it (./server.ts).

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error';

export class OpenAIError extends Error {
  override readonly name = 'OpenAIError';
  constructor(
    readonly status: number,
    readonly type: OpenAIErrorType,
    message: string,
    /** The request field at fault (`messages[2].content[1]`), or null. */
    readonly param: string | null = null,
    /** A stable machine code (`invalid_image`, `context_length_exceeded`, …), or null. */
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 naming the field at fault. */
export const invalid = (param: string, message: string, code: string | null = null): OpenAIError =>
  new OpenAIError(400, 'invalid_request_error', `${param}: ${message}`, param, code);

/** Fastify's own 4xx errors (JSON parser, body limit, media type) in OpenAI's shape; others → undefined. */
export function fromFastifyError(err: { statusCode?: number; code?: string; message: string }): OpenAIError | undefined {
  const status = err.statusCode ?? 500;
  if (status < 400 || status >= 500) return undefined;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OpenAIError(413, 'invalid_request_error', `request body too large: ${err.message}`, null, 'request_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new OpenAIError(415, 'invalid_request_error', `${err.message} (send Content-Type: application/json)`, null, 'unsupported_media_type');
    default:
      // Malformed JSON: FST_ERR_CTP_INVALID_JSON_BODY / _EMPTY_JSON_BODY, or JSON.parse's SyntaxError with status 400.
      return new OpenAIError(status, 'invalid_request_error', `malformed request body: ${err.message}`, null, 'invalid_json');
  }
}
