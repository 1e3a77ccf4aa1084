// The Qwen2-VL / Qwen2.5-VL tokenizer: a model directory in the Hugging Face layout
// (tokenizer.json, tokenizer_config.json, optional generation_config.json and chat_template.*)
// loaded with @huggingface/tokenizers. Every file is size-checked and shape-checked before use;
// the ids of the family's special tokens and the eos ids are read from the files, never assumed.
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';

/** A missing, oversized or malformed tokenizer file, or a token the family needs that is absent. */
export class QwenTokenizerError extends Error {
  override name = 'QwenTokenizerError';
  constructor(
    /** The file the problem is in (a path, or a file name when loaded from objects). */
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/** Byte limits per file (a real Qwen tokenizer.json is about 11 MB, its config about 10 kB). */
export const QWEN_FILE_LIMITS = {
  'tokenizer.json': 64 << 20,
  'tokenizer_config.json': 8 << 20,
  'generation_config.json': 1 << 20,
  'chat_template.json': 1 << 20,
  'chat_template.jinja': 1 << 20,
} as const;

/** Token strings the family uses; the ids come from the vocabulary. */
export const QWEN_TOKEN_STRINGS = {
  imStart: '<|im_start|>',
  imEnd: '<|im_end|>',
  endOfText: '<|endoftext|>',
  visionStart: '<|vision_start|>',
  visionEnd: '<|vision_end|>',
  imagePad: '<|image_pad|>',
  toolCallStart: '<tool_call>',
  toolCallEnd: '</tool_call>',
} as const;

/** Ids of the tokens every Qwen2-VL-family vocabulary has as single added tokens. */
export interface QwenSpecialIds {
  imStart: number;
  imEnd: number;
  endOfText: number;
  visionStart: number;
  visionEnd: number;
  imagePad: number;
  /** `<tool_call>` / `</tool_call>` are single tokens from Qwen2.5 on (not in Qwen2-VL's vocabulary): undefined when absent. */
  toolCallStart?: number;
  toolCallEnd?: number;
}

/** The parsed contents of a model directory's tokenizer files. */
export interface QwenTokenizerFiles {
  /** tokenizer.json */
  tokenizer: unknown;
  /** tokenizer_config.json */
  tokenizerConfig: unknown;
  /** generation_config.json, when the directory has one. */
  generationConfig?: unknown;
  /** A chat template from chat_template.jinja / chat_template.json, which take precedence over tokenizer_config's. */
  chatTemplate?: string;
}

export interface QwenAddedToken {
  id: number;
  content: string;
  /** true for control tokens (<|im_start|>, <|image_pad|>, ...); false for e.g. <tool_call> in Qwen2.5/Qwen3. */
  special: boolean;
}

export interface DecodeOptions {
  /** Drop tokens marked special (control tokens). Default false. */
  skipSpecialTokens?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const show = (v: unknown): string => (Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v);

export class QwenTokenizer {
  /** Ids of the family's special tokens, looked up in this vocabulary. */
  readonly special: Readonly<QwenSpecialIds>;
  /** Ids that end generation: generation_config.json's eos_token_id (a number or a list), else tokenizer_config's eos_token. */
  readonly eosIds: readonly number[];
  /** tokenizer_config's pad_token id, when it names one. */
  readonly padId: number | undefined;
  /** Added tokens (control and non-control), in id order. */
  readonly addedTokens: readonly QwenAddedToken[];
  /** Strings of the added tokens marked special: content must never spell them (see chat.ts). */
  readonly controlTokens: readonly string[];
  /** Size of the id space: the largest id + 1. */
  readonly vocabSize: number;
  /** The chat template (chat_template.jinja, chat_template.json or tokenizer_config.json, in that order), or undefined. */
  readonly chatTemplate: string | undefined;
  /** tokenizer_config.json as read (bos/eos/pad strings are passed to the template). */
  readonly config: Readonly<Record<string, unknown>>;
  private readonly tok: Tokenizer;
  private readonly specialIdSet: Set<number>;

  /** Loads `dir/tokenizer.json`, `dir/tokenizer_config.json` and, when present, `dir/generation_config.json` and `dir/chat_template.{jinja,json}`. */
  static fromDir(dir: string): QwenTokenizer {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError(`Expected a directory path for dir but received ${show(dir)}`);
    const file = (name: keyof typeof QWEN_FILE_LIMITS): string => path.join(dir, name);
    // Small files first, so that their errors come before the cost of parsing tokenizer.json.
    const tokenizerConfig = readJson(file('tokenizer_config.json'), true);
    const generationConfig = readJson(file('generation_config.json'), false);
    if (generationConfig !== undefined) eosFromGenerationConfig(generationConfig, file('generation_config.json'), Infinity);
    const files: QwenTokenizerFiles = { tokenizer: undefined, tokenizerConfig, generationConfig };
    const jinja = readText(file('chat_template.jinja'), false);
    const tplJson = readJson(file('chat_template.json'), false);
    if (jinja !== undefined) files.chatTemplate = jinja;
    else if (tplJson !== undefined) {
      if (!isObject(tplJson) || typeof tplJson.chat_template !== 'string') {
        throw new QwenTokenizerError(file('chat_template.json'), `Expected an object with a string chat_template but received ${show(tplJson)}`);
      }
      files.chatTemplate = tplJson.chat_template;
    }
    files.tokenizer = readJson(file('tokenizer.json'), true);
    return new QwenTokenizer(files, dir);
  }

  /** Builds the tokenizer from already-parsed files; `where` prefixes file names in errors. */
  constructor(files: QwenTokenizerFiles, where = '') {
    const name = (f: string): string => (where ? path.join(where, f) : f);
    const tjName = name('tokenizer.json');
    const cfgName = name('tokenizer_config.json');
    const genName = name('generation_config.json');
    const tj = files.tokenizer;
    if (!isObject(tj)) throw new QwenTokenizerError(tjName, `Expected a JSON object but received ${show(tj)}`);
    const model = tj.model;
    if (!isObject(model) || !isObject(model.vocab)) throw new QwenTokenizerError(tjName, 'Expected model.vocab to be an object (a BPE vocabulary)');
    if (model.type !== undefined && model.type !== 'BPE') throw new QwenTokenizerError(tjName, `Expected model.type "BPE" but received ${JSON.stringify(model.type)}`);
    if (!Array.isArray(model.merges)) throw new QwenTokenizerError(tjName, 'Expected model.merges to be an array');
    if (!Array.isArray(tj.added_tokens)) throw new QwenTokenizerError(tjName, 'Expected added_tokens to be an array');
    const added: QwenAddedToken[] = [];
    for (const [i, t] of (tj.added_tokens as unknown[]).entries()) {
      if (!isObject(t) || !isId(t.id) || typeof t.content !== 'string' || t.content.length === 0) {
        throw new QwenTokenizerError(tjName, `Expected added_tokens[${i}] to be {id: integer >= 0, content: non-empty string, special?: boolean}`);
      }
      added.push({ id: t.id, content: t.content, special: t.special === true });
    }
    added.sort((a, b) => a.id - b.id);
    let maxId = -1;
    for (const [tokStr, id] of Object.entries(model.vocab)) {
      if (!isId(id)) throw new QwenTokenizerError(tjName, `Expected an integer id >= 0 for vocab entry ${JSON.stringify(tokStr.slice(0, 40))} but received ${show(id)}`);
      if (id > maxId) maxId = id;
    }
    for (const t of added) if (t.id > maxId) maxId = t.id;

    const cfg = files.tokenizerConfig;
    if (!isObject(cfg)) throw new QwenTokenizerError(cfgName, `Expected a JSON object but received ${show(cfg)}`);
    const tokenString = (key: string): string | undefined => {
      const v = cfg[key];
      if (v === undefined || v === null) return undefined;
      if (typeof v === 'string') return v;
      if (isObject(v) && typeof v.content === 'string') return v.content; // AddedToken dict form
      throw new QwenTokenizerError(cfgName, `Expected a string (or {content}) for ${key} but received ${show(v)}`);
    };
    const eosStr = tokenString('eos_token');
    const padStr = tokenString('pad_token');
    tokenString('bos_token');

    let eos = files.generationConfig === undefined ? undefined : eosFromGenerationConfig(files.generationConfig, genName, maxId + 1);
    try {
      this.tok = new Tokenizer(tj, cfg);
    } catch (e) {
      throw new QwenTokenizerError(tjName, `@huggingface/tokenizers could not build the tokenizer: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.config = cfg;
    this.addedTokens = added;
    this.controlTokens = added.filter((t) => t.special).map((t) => t.content);
    this.specialIdSet = new Set(added.filter((t) => t.special).map((t) => t.id));
    this.vocabSize = maxId + 1;

    const single = (s: string): number | undefined => added.find((t) => t.content === s)?.id;
    const need = (s: string): number => {
      const id = single(s);
      if (id === undefined) throw new QwenTokenizerError(tjName, `the Qwen2-VL family needs ${s} as a single added token, and added_tokens has none`);
      return id;
    };
    const S = QWEN_TOKEN_STRINGS;
    this.special = Object.freeze({
      imStart: need(S.imStart),
      imEnd: need(S.imEnd),
      endOfText: need(S.endOfText),
      visionStart: need(S.visionStart),
      visionEnd: need(S.visionEnd),
      imagePad: need(S.imagePad),
      toolCallStart: single(S.toolCallStart),
      toolCallEnd: single(S.toolCallEnd),
    });

    const idOf = (s: string, file: string, key: string): number => {
      const id = single(s) ?? this.tok.token_to_id(s);
      if (id === undefined) throw new QwenTokenizerError(file, `${key} ${JSON.stringify(s)} is not a token of tokenizer.json`);
      return id;
    };
    this.padId = padStr === undefined ? undefined : idOf(padStr, cfgName, 'pad_token');

    if (eos === undefined) {
      if (eosStr === undefined) throw new QwenTokenizerError(cfgName, 'no eos_token, and no generation_config.json eos_token_id: cannot tell when generation ends');
      eos = [idOf(eosStr, cfgName, 'eos_token')];
    }
    this.eosIds = Object.freeze(eos);

    let tpl = files.chatTemplate;
    if (tpl === undefined && cfg.chat_template !== undefined) tpl = pickTemplate(cfg.chat_template, cfgName);
    this.chatTemplate = tpl;
  }

  /** Token ids of `text`. Added tokens spelled in the text become their single ids (Hugging Face semantics). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`Expected string for text but received ${show(text)}`);
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; every id must be in the vocabulary. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const arr = Array.from(ids);
    for (const [i, id] of arr.entries()) {
      if (!isId(id) || id >= this.vocabSize) throw new RangeError(`Expected a token id in [0, ${this.vocabSize}) for ids[${i}] but received ${String(id)}`);
    }
    if (arr.length === 0) return '';
    return this.tok.decode(arr, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** The id of one token string (vocabulary or added token), or undefined. */
  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** The token string of an id, or undefined. */
  tokenString(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** True for control tokens (added tokens marked special). */
  isControl(id: number): boolean {
    return this.specialIdSet.has(id);
  }

  /** True when `id` ends generation. */
  isEos(id: number): boolean {
    return this.eosIds.includes(id);
  }
}

/** generation_config.json's eos_token_id (a number or a non-empty list), deduplicated; undefined when it has none. */
function eosFromGenerationConfig(g: unknown, file: string, vocabSize: number): number[] | undefined {
  if (!isObject(g)) throw new QwenTokenizerError(file, `Expected a JSON object but received ${show(g)}`);
  const e = g.eos_token_id;
  if (e === undefined || e === null) return undefined;
  const list = Array.isArray(e) ? e : [e];
  if (list.length === 0 || !list.every(isId)) throw new QwenTokenizerError(file, `Expected eos_token_id to be an integer id or a non-empty list of them but received ${JSON.stringify(e).slice(0, 80)}`);
  for (const id of list) if (id >= vocabSize) throw new QwenTokenizerError(file, `eos_token_id ${id} is outside the vocabulary (size ${vocabSize})`);
  return [...new Set(list)];
}

/** chat_template may be a string or a list of {name, template}: the "default" one (or the first). */
function pickTemplate(v: unknown, file: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.length > 0 && v.every((t) => isObject(t) && typeof t.name === 'string' && typeof t.template === 'string')) {
    const list = v as { name: string; template: string }[];
    return (list.find((t) => t.name === 'default') ?? list[0]).template;
  }
  throw new QwenTokenizerError(file, `Expected chat_template to be a string or a list of {name, template} but received ${show(v)}`);
}

function readText(file: string, required: boolean): string | undefined {
  const base = path.basename(file) as keyof typeof QWEN_FILE_LIMITS;
  const limit = QWEN_FILE_LIMITS[base] ?? 1 << 20;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new QwenTokenizerError(file, required && (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing (a Hugging Face model directory needs it)' : `cannot read: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new QwenTokenizerError(file, 'is not a regular file');
  if (st.size > limit) throw new QwenTokenizerError(file, `is ${st.size} bytes, more than the ${limit}-byte limit for this file`);
  return fs.readFileSync(file, 'utf8');
}

function readJson(file: string, required: boolean): unknown {
  const text = readText(file, required);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new QwenTokenizerError(file, `is not valid JSON: ${e instanceof Error ? e.message.slice(0, 120) : 'parse error'}`);
  }
}
