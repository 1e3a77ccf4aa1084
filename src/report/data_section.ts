// The report's "Data" section: what the run trained and evaluated on (data.json, written by the run),
// how items were split, what was skipped, what the demonstrations were, and how answers are graded.
import * as fs from 'fs';
import * as path from 'path';

interface DataRecord {
  items?: string;
  dataset?: { path: string; kind: string; size: number; sha256: string };
  splits?: { splitFrom: string; train: number; val: number; test: number; demoEligible: number; withBox: number };
  skipped?: { where: string; message: string }[];
  demoPool?: { demonstrations: number; zoom: number; answerOnly: number };
}

const GRADING =
  'Grading: a multiple-choice answer must name exactly one option (its letter or its text); an open question (no options) is graded by ' +
  'normalized exact match (lower case, collapsed spaces, outer punctuation removed); a closed yes/no question is one with the options yes/no, ' +
  'graded like multiple choice, so "yes" or "A" answers it. Empty, hedged ("A or B") or overlong answers score 0.';

/** Markdown lines of the Data section (empty for runs without data.json). */
export function dataLines(dir: string): string[] {
  const file = path.join(dir, 'data.json');
  if (!fs.existsSync(file)) return [];
  const d = JSON.parse(fs.readFileSync(file, 'utf8')) as DataRecord;
  const out = ['## Data', ''];
  if (d.dataset && d.splits) {
    const s = d.splits;
    out.push(
      `Dataset \`${d.dataset.path}\` (${d.dataset.kind}, ${d.dataset.size} items, sha256 \`${d.dataset.sha256.slice(0, 16)}…\`).`,
      '',
      `| split from | train | val | test | demonstration items | with a box |`,
      '|---|---|---|---|---|---|',
      `| ${s.splitFrom === 'dataset' ? "the dataset's own" : s.splitFrom === 'hash' ? 'hash of the item id' : 'own where given, else hash'} | ${s.train} | ${s.val} | ${s.test} | ${s.demoEligible} | ${s.withBox} |`,
      '',
      'GRPO walks the train split in seeded epochs; evaluation uses the test split only.',
    );
  } else out.push(d.items ?? 'The synthetic generator.');
  if (d.demoPool) out.push('', `SFT demonstrations: ${d.demoPool.demonstrations} (${d.demoPool.zoom} zoom into the finding box, ${d.demoPool.answerOnly} answer only).`);
  const bad = d.skipped ?? [];
  if (bad.length) {
    out.push('', `${bad.length} bad rows were skipped:`, '');
    for (const b of bad.slice(0, 20)) out.push(`- \`${b.where}\`: ${b.message}`);
    if (bad.length > 20) out.push(`- … and ${bad.length - 20} more (data.json lists them all).`);
  }
  out.push('', GRADING, '');
  return out;
}
