// The text of one choice as its tokens come in: stop strings (the text ends before the first match,
// as OpenAI's `stop`), and the part that is safe to stream — never half a UTF-8 character, never the
// start of a possible stop string, and (tools mode) nothing from the first <tool_call> on, which is
// sent as tool_calls at the end, nor a tail that may be its start (Qwen2-VL spells it in bytes).
// Ids become text through the model's decoder (./choice_decoder.ts).
import { medgymDecoder, type ChoiceDecoder } from './choice_decoder';

const TOOL_CALL_OPEN = '<tool_call>';

/** Length of the longest proper prefix of `marker` that `text` ends with (0 if none). */
function partialSuffix(text: string, marker: string): number {
  for (let k = Math.min(marker.length - 1, text.length); k > 0; k--) if (text.endsWith(marker.slice(0, k))) return k;
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
    /** The model's ids → text (default medgym-vlm's bytes). */
    private readonly decoder: ChoiceDecoder = medgymDecoder,
  ) {}

  /** Adds sampled ids; true when a stop string now appears (the choice is done). */
  push(ids: ArrayLike<number>): boolean {
    for (let k = 0; k < ids.length; k++) this.ids.push(ids[k]);
    this.full = this.decoder.decode(this.ids);
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
    let end = this.cut ?? this.decoder.decode(this.ids.slice(0, this.decoder.completeLength(this.ids))).length;
    const text = this.full.slice(0, end);
    // The start of a marker may be what the text ends with: held until the marker is ruled out.
    const markers = [...(this.cut === undefined ? this.stopStrings : []), ...(this.holdFromToolCall ? [TOOL_CALL_OPEN] : [])];
    for (const s of markers) end = Math.min(end, text.length - partialSuffix(text, s));
    if (this.holdFromToolCall) {
      const at = text.indexOf(TOOL_CALL_OPEN);
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
