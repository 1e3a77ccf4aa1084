// `medgym serve` flags: sizes, ports, devices and exposure are checked before anything is loaded.
import { parseByteSize, serveCommand } from '../../src/cli/serve';
import { expectRejects, expectThrows } from '../helpers/errors';

describe('medgym serve flags', () => {
  test('--max-body sizes', () => {
    expect(parseByteSize('32mb', 'max-body')).toBe(32 * 2 ** 20);
    expect(parseByteSize('512KB', 'max-body')).toBe(512 * 1024);
    expect(parseByteSize('1048576', 'max-body')).toBe(1048576);
    for (const bad of ['', 'lots', '-1mb', '0', '3tb']) expectThrows(() => parseByteSize(bad, 'max-body'), 'RangeError', /--max-body/);
  });

  test('bad flags are RangeErrors naming the flag; a non-loopback host needs a token', async () => {
    await expectRejects(serveCommand({}), 'RangeError', /--checkpoint/);
    await expectRejects(serveCommand({ checkpoint: 'x.safetensors', port: '70000' }), 'RangeError', /--port/);
    await expectRejects(serveCommand({ checkpoint: 'x.safetensors', device: 'tpu' }), 'RangeError', /--device/);
    await expectRejects(serveCommand({ checkpoint: 'x.safetensors', maxBatch: '0' }), 'RangeError', /--max-batch/);
    await expect(serveCommand({ checkpoint: '/nonexistent/x.safetensors' })).rejects.toThrow(/nonexistent\/x\.safetensors: cannot open/);
    const saved = process.env.MEDGYM_TOKEN;
    delete process.env.MEDGYM_TOKEN;
    try {
      await expectRejects(serveCommand({ checkpoint: 'never-loaded.safetensors', host: '0.0.0.0', port: '0' }), 'RangeError', /without a token/);
    } finally {
      if (saved !== undefined) process.env.MEDGYM_TOKEN = saved;
    }
  });
});
