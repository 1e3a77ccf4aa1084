// zoomHit: a zoom box holds the centre of the ground-truth finding; zoomHitRate: its share over the
// episodes that have a finding box.
import { zoomHit, zoomHitRate } from '../../src/rewards';
import type { Box } from '../../src/tools/image';

const gt: Box = [64, 128, 96, 160]; // centre (80, 144): cell B3 of a 256-px image

test('a zoom hits when its box holds the finding centre; edges follow [x0, x1)', () => {
  expect(zoomHit({ zoomBoxes: [[64, 128, 128, 192]], gtBox: gt })).toBe(true); // B3
  expect(zoomHit({ zoomBoxes: [[128, 128, 192, 192]], gtBox: gt })).toBe(false); // C3, overlapping nothing
  expect(zoomHit({ zoomBoxes: [[0, 0, 64, 64], [64, 128, 128, 192]], gtBox: gt })).toBe(true); // any of several
  expect(zoomHit({ zoomBoxes: [[0, 128, 80, 192]], gtBox: gt })).toBe(false); // x1 = 80 excludes the centre
  expect(zoomHit({ zoomBoxes: [[80, 144, 81, 145]], gtBox: gt })).toBe(true); // x0 = 80 includes it
  expect(zoomHit({ zoomBoxes: [], gtBox: gt })).toBe(false);
  expect(zoomHit({ zoomBoxes: [[0, 0, 256, 256]] })).toBeUndefined(); // no finding box
});

test('zoomHitRate counts only episodes with a finding box', () => {
  expect(zoomHitRate([{ zoomHit: true }, { zoomHit: false }, { zoomHit: true }, {}])).toBeCloseTo(2 / 3, 12);
  expect(zoomHitRate([{}, {}])).toBeNull();
  expect(zoomHitRate([])).toBeNull();
});
