// `medgym eval --policy <url> --model <name>` (evalPolicyCommand) against a fake OpenAI server: a valid
// EvalResult written to --out, the summary on stderr, the API key from the named environment variable,
// evaluation with and without tools; and the flag checks of `medgym eval`.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { evalAnyCommand } from '../../../src/cli/eval_model';
import { httpPolicyOptions } from '../../../src/cli/eval_policy';
import { chats, completion, useFake } from './fake_server';

const start = useFake();
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-eval-policy-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

test('evalPolicyCommand writes a valid EvalResult and a summary', async () => {
  const fake = await start({ chat: (r) => ({ body: completion('m', { content: r.body.tools ? '<answer>A</answer>' : 'Probably <answer>B</answer>' }) }) });
  const cfg = path.join(TMP, 'cfg.json');
  fs.writeFileSync(cfg, JSON.stringify({ env: { maxTurns: 2, maxNewTokensPerTurn: 16 } }));
  const out = path.join(TMP, 'out.json');
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  process.env.MEDGYM_TEST_KEY = 'sk-from-env';
  try {
    const code = await evalAnyCommand({ policy: fake.url, model: 'm', config: cfg, items: '2', samples: '2', out, apiKeyEnv: 'MEDGYM_TEST_KEY', concurrency: '3' });
    expect(code).toBe(0);
    const summary = err.mock.calls.map((c) => String(c[0])).join('');
    expect(summary).toMatch(/^m\nAcc@1 \d\.\d{3} \| Pass@1 .* Pass@2 .* \(with tools, 2 items\)\n.*\(without tools, 2 items\)\n$/);
  } finally {
    err.mockRestore();
    delete process.env.MEDGYM_TEST_KEY;
  }
  const r = JSON.parse(fs.readFileSync(out, 'utf8')) as { label: string; items: number; samples: number; withTools: { acc1: number; passAtK: number[] }; withoutTools?: { passAtK: number[] } };
  expect(r).toMatchObject({ label: 'm', items: 2, samples: 2 });
  expect(r.withTools.passAtK).toHaveLength(2);
  expect(r.withoutTools!.passAtK).toHaveLength(2);
  const reqs = chats(fake);
  expect(reqs.some((q) => q.tools) && reqs.some((q) => !q.tools)).toBe(true); // with and without tools
  expect(reqs.every((q) => q.max_tokens === 16)).toBe(true); // the config's per-turn cap, in the server's tokens
  expect(fake.requests.every((q) => q.headers.authorization === 'Bearer sk-from-env')).toBe(true);
});

test('the flags of medgym eval --policy are checked, naming the flag', async () => {
  await expect(evalAnyCommand({ policy: 'http://127.0.0.1:1/v1' })).rejects.toThrow(/--policy <url> needs --model <name>/);
  await expect(evalAnyCommand({ policy: 'http://127.0.0.1:1/v1', model: 'm', checkpoint: 'x' })).rejects.toThrow(/and no --checkpoint/);
  await expect(evalAnyCommand({ policy: 'http://127.0.0.1:1/v1', model: 'm', weightsDtype: 'bfloat16' })).rejects.toThrow(/--weights-dtype: for a local --model directory only/);
  await expect(evalAnyCommand({ model: 'dir', protocol: 'chat' })).rejects.toThrow(/--protocol: for a served model only \(--policy <url>\)/);
  await expect(evalAnyCommand({ checkpoint: 'x.safetensors', policy: 'http://h/v1' })).rejects.toThrow(/--policy <url> needs --model/);
  const f = { policy: 'http://h/v1', model: 'm' };
  expect(() => httpPolicyOptions({ ...f, protocol: 'grpc' })).toThrow(/auto, medgym-vlm, chat for --protocol but received "grpc"/);
  expect(() => httpPolicyOptions({ ...f, toolFormat: 'xml' })).toThrow(/openai, text for --tool-format/);
  expect(() => httpPolicyOptions({ ...f, concurrency: '1.5' })).toThrow(/an integer > 0 for --concurrency/);
  expect(() => httpPolicyOptions({ ...f, timeout: '0' })).toThrow(/a number > 0 for --timeout/);
  expect(() => httpPolicyOptions({ ...f, apiKeyEnv: 'NOT_SET_ANYWHERE_X' }, {})).toThrow(/--api-key-env NOT_SET_ANYWHERE_X: the variable is not set/);
  expect(() => httpPolicyOptions({ ...f, apiKeyEnv: 'a b' }, {})).toThrow(/environment variable name for --api-key-env/);
  expect(httpPolicyOptions(f, { OPENAI_API_KEY: 'k' })).toMatchObject({ apiKey: 'k', protocol: 'auto', toolFormat: 'openai' });
  expect(httpPolicyOptions(f, {}).apiKey).toBeUndefined();
  expect(httpPolicyOptions({ ...f, timeout: '2.5', concurrency: '4' }, {})).toMatchObject({ timeoutSeconds: 2.5, concurrency: 4 });
});
