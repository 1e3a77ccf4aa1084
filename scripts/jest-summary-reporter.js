// Ends a jest run with one plain line, "jest: N passed, N failed, N skipped", the closing line that
// CI reads in any language (jest's own "Tests: N passed, N total" is not one of them).
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    process.stdout.write(
      `jest: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped} skipped\n`,
    );
  }
}
module.exports = SummaryReporter;
