// vega-lite spec → SVG (vega View.toSVG with renderer 'none': no browser, no canvas) → PNG (sharp).
// vega and vega-lite are ESM-only: imported through a real dynamic import that TypeScript's CJS
// output would otherwise turn into require().
import sharp from 'sharp';

export type Spec = Record<string, unknown>;
const esmImport = new Function('m', 'return import(m)') as (m: string) => Promise<unknown>;

/** Renders a vega-lite spec to SVG (headless vega View) and PNG (sharp, 144 dpi). */
export async function renderChart(spec: Spec): Promise<{ svg: string; png: Uint8Array }> {
  const vl = (await esmImport('vega-lite')) as { compile(s: unknown): { spec: unknown } };
  const vega = (await esmImport('vega')) as { parse(s: unknown): unknown; View: new (rt: unknown, o: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void } };
  const view = new vega.View(vega.parse(vl.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white', ...spec }).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = await sharp(Buffer.from(svg), { density: 144 }).png().toBuffer();
  return { svg, png };
}
