/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // nifti-reader-js ships ES modules only: jest maps it to its entry file and compiles it with swc.
  transform: { '^.+\\.[tj]s$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  transformIgnorePatterns: ['/node_modules/(?!nifti-reader-js/)'],
  moduleNameMapper: { '^nifti-reader-js$': '<rootDir>/node_modules/nifti-reader-js/dist/nifti.js' },
  testTimeout: 60000,
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
};
