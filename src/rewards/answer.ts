// Grading of the text inside <answer> under SPEC §7's anti-gaming rules: exactly one option (its
// letter, or its text), nothing else. Empty, several letters, or too long score 0 and are counted.

export type AnswerStatus = 'ok' | 'empty' | 'multiple' | 'too_long' | 'unrecognized';

export interface GradedAnswer {
  /** The answer matches the ground truth. */
  correct: boolean;
  /** How the answer was read: 'ok' when recognised (correct or not), else why it could not be graded. */
  status: AnswerStatus;
  /** Index of the option chosen (multiple choice), when recognised. */
  choice?: number;
}

/** Characters an answer may exceed the longest option by (room for "B. " and punctuation). */
export const ANSWER_MARGIN = 8;

/** Lower case, trimmed, inner whitespace collapsed, outer punctuation and quotes removed. */
export function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/^[\s"'`([{]+|[\s"'`)\]}.,;:!?]+$/g, '')
    .trim();
}

const LETTER = /^\(?([a-z])\)?[.):]?$/;
const LETTER_THEN_TEXT = /^\(?([a-z])\)?[.):]\s*(.+)$/;
const SEVERAL = /^\(?[a-z]\)?\s*(?:,|\/|&|\+|\bor\b|\band\b)\s*\(?[a-z]\)?\b/;

/**
 * Grades `raw` against multiple-choice `options` (answer = index) or, when options is empty,
 * against the reference text `answer` (normalized exact match).
 */
export function gradeAnswer(raw: string, options: string[], answer: number | string): GradedAnswer {
  const a = normalizeAnswer(raw);
  if (a.length === 0) return { correct: false, status: 'empty' };
  if (options.length === 0) {
    const ref = normalizeAnswer(String(answer));
    if (a.length > ref.length + ANSWER_MARGIN) return { correct: false, status: 'too_long' };
    return { correct: a === ref, status: 'ok' };
  }
  const longest = Math.max(...options.map((o) => o.length));
  if (raw.trim().length > longest + ANSWER_MARGIN) return { correct: false, status: 'too_long' };
  if (SEVERAL.test(a) || /^[a-z]{2,4}$/.test(a) && !options.some((o) => normalizeAnswer(o) === a) && [...a].every((c) => c.charCodeAt(0) - 97 < options.length)) {
    return { correct: false, status: 'multiple' };
  }
  const texts = options.map(normalizeAnswer);
  let choice = -1;
  const byText = texts.indexOf(a);
  const m = LETTER.exec(a);
  const mt = LETTER_THEN_TEXT.exec(a);
  if (byText !== -1) choice = byText;
  else if (m) choice = m[1].charCodeAt(0) - 97;
  else if (mt) {
    const k = mt[1].charCodeAt(0) - 97;
    // "B. liver" counts only when the text is option B's; "B. spleen" names two different options.
    if (k < options.length && texts[k] === normalizeAnswer(mt[2])) choice = k;
    else return { correct: false, status: texts.includes(normalizeAnswer(mt[2])) ? 'multiple' : 'unrecognized' };
  }
  if (choice < 0 || choice >= options.length) return { correct: false, status: 'unrecognized' };
  return { correct: choice === answer, status: 'ok', choice };
}
