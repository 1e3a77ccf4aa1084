// Score free-text VLM answers with medgym's rewards, the way a service grading another model's
// answers would: grade each answer against the question's options (or reference text), then sum the
// env's reward components (accuracy + 0.1 · format by default) and print per-answer and batch stats.
//   node examples/score-answers.mjs            (after `npm install medgym`)
import { gradeAnswer, composeRewards, batchStats } from 'medgym/rewards';

const items = [
  { question: 'Which lung has the nodule?', options: ['left', 'right'], answer: 1, reply: 'B. right' },
  { question: 'Which lung has the nodule?', options: ['left', 'right'], answer: 1, reply: 'Left.' },
  { question: 'Is there free air?', options: [], answer: 'no', reply: 'No.' },
  { question: 'Modality?', options: ['CT', 'MRI', 'X-ray'], answer: 2, reply: 'A or C' },
];

const reward = composeRewards({ accuracy: 1, format: 0.1 });
const entries = items.map((it) => {
  const graded = gradeAnswer(it.reply, it.options, it.answer);
  // What the rewards see of an episode; a plain answer has no tool calls or zoom boxes.
  const summary = {
    answerStatus: graded.status,
    correct: graded.correct,
    wellFormed: graded.status === 'ok',
    toolCalls: 0,
    toolErrors: 0,
    zoomBoxes: [],
    truncated: false,
  };
  return { item: it, graded, summary, reward: reward(summary) };
});

for (const e of entries) {
  console.log(`${JSON.stringify(e.item.reply).padEnd(18)} status=${e.graded.status.padEnd(9)} correct=${e.graded.correct} reward=${e.reward.total.toFixed(2)}`);
}
const stats = batchStats(entries.map((e) => ({ summary: e.summary, reward: e.reward })));
console.log(JSON.stringify({ episodes: stats.episodes, accuracy: stats.accuracy, meanReward: stats.meanReward, answerStatus: stats.answerStatus }));
