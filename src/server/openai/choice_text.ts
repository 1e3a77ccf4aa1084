// The text of one choice as its tokens come in: stop strings (the text ends before the first match,
// as OpenAI's `stop`), and the part that is safe to stream — never half a UTF-8 character, never the
// start of a possible stop string, and (tools mode) nothing from the first <tool_call> on, which is
// sent as tool_calls at the end.
import { BYTE_VOCAB, decode } from '../../tokenizer';

/** Trailing byte ids that start a UTF-8 character still missing continuation bytes: held back. */
function incompleteTail(ids: number[]): number {
  for (let back = 1; back <= Math.min(4, ids.length); back++) {
    const b = ids[ids.length - back];
    if (b >= BYTE_VOCAB) return 0;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back for its lead
    const need = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

export class ChoiceText {
  readonly ids: number[] = [];
  /** Characters of `text` already streamed. */
  private sent = 0;
  private full = '';
  private cut: number | undefined;

  constructor(
    private readonly stopStrings: string[],
    private readonly holdFromToolCall: boolean,
  ) {}

  /** Adds sampled ids; true when a stop string now appears (the choice is done). */
  push(ids: ArrayLike<number>): boolean {
    for (let k = 0; k < ids.length; k++) this.ids.push(ids[k]);
    this.full = decode(this.ids);
    for (const s of this.stopStrings) {
      const at = this.full.indexOf(s);
      if (at !== -1 && (this.cut === undefined || at < this.cut)) this.cut = at;
    }
    return this.cut !== undefined;
  }

  /** The text so far (final once the choice is done): up to the first stop string. */
  get text(): string {
    return this.cut === undefined ? this.full : this.full.slice(0, this.cut);
  }

  /** The next streamable piece ('' when nothing new is safe to send). */
  delta(): string {
    let end = this.cut ?? decode(this.ids.slice(0, this.ids.length - incompleteTail(this.ids))).length;
    const text = this.full.slice(0, end);
    if (this.cut === undefined) {
      for (const s of this.stopStrings) {
        for (let k = Math.min(s.length - 1, text.length); k > 0; k--) {
          if (text.endsWith(s.slice(0, k))) {
            end = Math.min(end, text.length - k);
            break;
          }
        }
      }
    }
    if (this.holdFromToolCall) {
      const at = text.indexOf('<tool_call>');
      if (at !== -1) end = Math.min(end, at);
    }
    if (end <= this.sent) return '';
    const out = text.slice(this.sent, end);
    this.sent = end;
    return out;
  }

  /** What is left to stream of `final` (the finished text, or tools mode's text less its calls). */
  rest(final: string): string {
    const out = final.slice(this.sent);
    this.sent = final.length;
    return out;
  }
}
