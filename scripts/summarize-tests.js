// Prints the run's closing line, `N passed, N failed`, from the lint result and Jest's JSON report;
// exits non-zero when anything failed or a suite could not run.
const { readFileSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

const dir = process.argv[2];
let passed = 0;
let failed = 0;
for (const file of readdirSync(dir).filter((name) => name.endsWith('.json'))) {
  const report = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  if (file === 'jest.json') {
    passed += report.numPassedTests;
    // A suite that fails to load has no failed tests of its own: count it once.
    failed += report.numFailedTests + report.numRuntimeErrorTestSuites;
    if (report.numPendingTests + report.numTodoTests > 0) {
      console.log(
        `skipped or todo tests: ${report.numPendingTests + report.numTodoTests} (count as failed)`,
      );
      failed += report.numPendingTests + report.numTodoTests;
    }
  } else {
    passed += report.passed;
    failed += report.failed;
  }
}
if (!readdirSync(dir).includes('jest.json')) {
  console.log('jest wrote no report');
  failed += 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
