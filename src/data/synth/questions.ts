// Question and option text for the five question types. Option sets are chosen so that the text
// alone says nothing about the answer: the truth is a uniform member of a random K-subset.
import type { QuestionType } from '../types';
import type { Look } from './looks';

export const TEXTURES = ['homogeneous', 'horizontally banded', 'vertically banded', 'reticular (checkered)'] as const;
export const GRADES = ['grade 1', 'grade 2', 'grade 3', 'grade 4'] as const;
/** Modality recognition picks its options inside one family, so the option set is not a clue. */
export const MODALITY_FAMILIES = [
  ['ct', 'mri', 'xray', 'ultrasound'],
  ['dermoscopy', 'fundus', 'oct', 'microscopy'],
] as const;

export function questionText(type: QuestionType, look: Look): string {
  const f = look.finding;
  switch (type) {
    case 'modality':
      return 'Which imaging modality produced this image?';
    case 'anatomy':
      return `Two ${f}s are visible. Where is the one with a reticular (checkered) texture?`;
    case 'diagnosis':
      return `What is the most likely diagnosis of the ${f}?`;
    case 'grading':
      return `What is the grade of the ${f}? (grade = number of speckled foci inside it)`;
    case 'attribute':
      return `What is the internal texture of the ${f}?`;
  }
}

/** Option texts of the 4 classes a question type chooses among (modality handled apart). */
export function classNames(type: Exclude<QuestionType, 'modality'>, look: Look): readonly string[] {
  switch (type) {
    case 'anatomy':
      return look.structures;
    case 'diagnosis':
      return look.diagnoses;
    case 'grading':
      return GRADES;
    case 'attribute':
      return TEXTURES;
  }
}
