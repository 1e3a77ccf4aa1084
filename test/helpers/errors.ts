// Errors thrown by the addon are created in Node's main realm, while jest runs tests in a vm
// sandbox whose TypeError/RangeError are other classes: `toThrow(TypeError)` fails across realms.
// These helpers check the error's name and message instead.
type ErrorName = 'TypeError' | 'RangeError' | 'Error';

function check(err: unknown, name: ErrorName, message?: RegExp): void {
  if (!(err && typeof err === 'object' && 'name' in err && 'message' in err)) {
    throw new Error(`expected a ${name} but got ${String(err)}`);
  }
  const e = err as { name: string; message: string };
  if (e.name !== name) throw new Error(`expected a ${name} but got ${e.name}: ${e.message}`);
  if (message && !message.test(e.message)) throw new Error(`${name} message "${e.message}" does not match ${message}`);
}

/** Asserts fn throws a `name` error whose message matches `message`. */
export function expectThrows(fn: () => unknown, name: ErrorName, message?: RegExp): void {
  let thrown = false;
  try {
    fn();
  } catch (err) {
    thrown = true;
    check(err, name, message);
  }
  if (!thrown) throw new Error(`expected a ${name}${message ? ` matching ${message}` : ''} but nothing was thrown`);
}

/** Asserts the promise rejects with a `name` error whose message matches `message`. */
export async function expectRejects(p: Promise<unknown>, name: ErrorName, message?: RegExp): Promise<void> {
  let rejected = false;
  try {
    await p;
  } catch (err) {
    rejected = true;
    check(err, name, message);
  }
  if (!rejected) throw new Error(`expected a rejection with ${name} but the promise resolved`);
}
