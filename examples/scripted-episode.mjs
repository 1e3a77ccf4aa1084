// Run one episode of the environment with a scripted policy (the expert: it zooms onto the finding,
// then answers) and save every view it was shown as PGM/PPM files (no image library needed).
//   node examples/scripted-episode.mjs [out-dir]    (default: <tmp>/medgym-views)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { make, expertPolicy } from 'medgym/env';

const out = process.argv[2] ?? path.join(os.tmpdir(), 'medgym-views');
fs.mkdirSync(out, { recursive: true });

/** A view as binary PGM (grey) or PPM (RGB). */
function writeView(file, view) {
  const header = `${view.channels === 1 ? 'P5' : 'P6'}\n${view.width} ${view.height}\n255\n`;
  fs.writeFileSync(file, Buffer.concat([Buffer.from(header), Buffer.from(view.data)]));
}

// The expert reads the ground truth (where the finding is), so the env must reveal it.
const env = make('MedVista-Synth-v0', { viewSize: 64, revealGroundTruth: true });
const policy = expertPolicy();
let { observation, info } = await env.reset({ seed: 0 });
const saved = [];
const save = (obs, turn) =>
  obs.images.forEach((view, i) => {
    const file = path.join(out, `turn${turn}_view${i}.${view.channels === 1 ? 'pgm' : 'ppm'}`);
    writeView(file, view);
    saved.push(file);
  });
save(observation, 0);
for (let turn = 1; ; turn++) {
  const action = policy.act(observation, info);
  const step = await env.step(action);
  console.log(`turn ${turn}: ${action.replace(/\s+/g, ' ').slice(0, 100)}`);
  save(step.observation, turn);
  ({ observation, info } = step);
  if (step.terminated || step.truncated) {
    console.log(JSON.stringify({ modality: info.modality, answer: info.answer, reward: step.reward, views: saved }));
    break;
  }
}
