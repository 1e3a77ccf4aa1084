// Token ids the trainer needs (SPEC §1), in one place.
export { ANSWER_END_ID, EOS_ID, TOOL_CALL_END_ID, TOOL_CALL_ID } from '../tokenizer';
export { DEFAULT_BANNED_TOKENS as DEFAULT_BANNED } from '../policy';
