/**
 * `medgym/rewards`: the env's rewards on their own — grade a free-text answer, compose accuracy,
 * format, tool and IoU rewards, batch metrics. Pure TypeScript: no native addon, no image library.
 * @module
 */
export * from '../rewards';
