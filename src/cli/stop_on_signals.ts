// What a long-running command (`medgym serve`, `medgym serve-env`) does on SIGINT / SIGTERM (or any
// other reason it is told to stop): say so once, close, exit 0 — or print why closing failed and exit 1.

/**
 * Installs the SIGINT / SIGTERM handlers and returns the stop function (callable with another
 * reason, e.g. a cluster primary's shutdown). `say` gives the line printed on stop (undefined: none).
 */
export function stopOnSignals(close: () => Promise<void>, say: (reason: string) => string | undefined): (reason: string) => void {
  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    const line = say(reason);
    if (line) console.log(line);
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return stop;
}
