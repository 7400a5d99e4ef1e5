// A line chart as inline SVG: one polyline, min/max and time labels. No chart library.

import { s } from './dom.js';

const WIDTH = 800;
const HEIGHT = 260;
const PAD = { left: 64, right: 16, top: 16, bottom: 36 };

/**
 * samples: [{ts, value}] oldest first. options: {unit, empty, formatValue, formatTime, start, end}
 * (start/end: the time axis in ms; default: the samples' own span).
 * Returns an <svg> element (role img, with a text alternative).
 */
export function lineChart(samples, options = {}) {
  const { unit = '', empty = '', formatValue = String, formatTime = String, title = '', start = null, end = null } = options;
  const svg = s('svg', {
    class: 'chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': title,
  });
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  svg.append(s('rect', { class: 'chart-frame', x: PAD.left, y: PAD.top, width: plotW, height: plotH }));
  const points = samples
    .map((p) => ({ t: Date.parse(p.ts), v: Number(p.value) }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v));
  if (points.length === 0) {
    svg.append(s('text', { class: 'chart-empty', x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle' }, empty));
    return svg;
  }
  let t0 = start ?? points[0].t;
  let t1 = end ?? points[points.length - 1].t;
  if (t1 === t0) t1 = t0 + 1;
  let vMin = Math.min(...points.map((p) => p.v));
  let vMax = Math.max(...points.map((p) => p.v));
  if (vMin > 0 && vMin < vMax * 0.5) vMin = 0; // anchor at zero unless the data sits far above it
  if (vMax === vMin) {
    vMax += 1;
    vMin -= vMin === 0 ? 0 : 1;
  }
  const x = (t) => PAD.left + Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) * plotW;
  const y = (v) => PAD.top + plotH - ((v - vMin) / (vMax - vMin)) * plotH;
  for (const v of [vMin, (vMin + vMax) / 2, vMax]) {
    svg.append(s('line', { class: 'chart-grid', x1: PAD.left, x2: PAD.left + plotW, y1: y(v), y2: y(v) }));
    svg.append(
      s('text', { class: 'chart-label', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, `${formatValue(v)}${unit ? ` ${unit}` : ''}`),
    );
  }
  svg.append(s('text', { class: 'chart-label', x: PAD.left, y: HEIGHT - 10 }, formatTime(new Date(t0))));
  svg.append(
    s('text', { class: 'chart-label', x: PAD.left + plotW, y: HEIGHT - 10, 'text-anchor': 'end' }, formatTime(new Date(t1))),
  );
  const coords = points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  svg.append(s('polyline', { class: 'chart-line', points: coords }));
  if (points.length === 1) {
    svg.append(s('circle', { class: 'chart-dot', cx: x(points[0].t), cy: y(points[0].v), r: 4 }));
  }
  return svg;
}
