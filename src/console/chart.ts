// Server-drawn SVG charts: stacked bars per day, one colour per series, with a legend and the
// same numbers as a table for screen readers and anyone who prefers text. Pure.
import { html } from '../platform/html.ts';
import type { Html } from '../platform/html.ts';

// Okabe–Ito palette: distinguishable with the common colour-vision deficiencies. Colour is
// never the only way to read a chart: bars have titles, the legend has totals, and the table
// under the chart has every number.
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#56B4E9', '#E69F00', '#000000'];
const WIDTH = 720;
const HEIGHT = 240;
const PAD = { top: 12, right: 12, bottom: 28, left: 56 };

export interface Series {
  name: string;
  /** One value per entry of `days`. */
  values: number[];
}

export function stackedBarChart(input: {
  id: string;
  title: string;
  days: string[];
  series: Series[];
  /** How a value reads in the table and the axis: `12 events`. */
  format: (value: number) => string;
}): Html {
  const { id, days, series, format } = input;
  // Beyond the palette, the smallest series are folded into "other" so colours stay distinct.
  const ranked = [...series].sort((a, b) => sum(b.values) - sum(a.values));
  const shown = ranked.slice(0, COLOURS.length - 1);
  const rest = ranked.slice(COLOURS.length - 1);
  if (rest.length > 0) {
    shown.push({
      name: 'other',
      values: days.map((_, i) => rest.reduce((s, r) => s + (r.values[i] ?? 0), 0)),
    });
  }
  const totals = days.map((_, i) => shown.reduce((s, r) => s + (r.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, days.length);
  const barW = Math.max(2, slot * 0.7);
  const bars: Html[] = [];
  days.forEach((day, i) => {
    let y = PAD.top + plotH;
    shown.forEach((s, k) => {
      const value = s.values[i] ?? 0;
      if (value <= 0) return;
      const h = (value / max) * plotH;
      y -= h;
      bars.push(
        html`<rect
          x="${(PAD.left + i * slot + (slot - barW) / 2).toFixed(1)}"
          y="${y.toFixed(1)}"
          width="${barW.toFixed(1)}"
          height="${h.toFixed(1)}"
          fill="${COLOURS[k % COLOURS.length]}"
          ><title>${day} · ${s.name}: ${format(value)}</title></rect
        >`,
      );
    });
  });
  const ticks = [0, 0.5, 1].map((f) => {
    const y = PAD.top + plotH - f * plotH;
    return html`<line
        x1="${PAD.left}"
        x2="${WIDTH - PAD.right}"
        y1="${y.toFixed(1)}"
        y2="${y.toFixed(1)}"
        stroke="#a1a1aa"
        stroke-width="1"
      />
      <text
        x="${PAD.left - 6}"
        y="${(y + 4).toFixed(1)}"
        text-anchor="end"
        font-size="11"
        fill="#3f3f46"
        >${compact(max * f)}</text
      >`;
  });
  const labelEvery = Math.max(1, Math.ceil(days.length / 8));
  const labels = days.map((day, i) =>
    i % labelEvery === 0
      ? html`<text
          x="${(PAD.left + i * slot + slot / 2).toFixed(1)}"
          y="${HEIGHT - 8}"
          text-anchor="middle"
          font-size="11"
          fill="#3f3f46"
          >${day.slice(5)}</text
        >`
      : '',
  );
  const totalAll = sum(totals);
  return html`<figure class="chart" id="${id}">
    <svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="${id}-title ${id}-desc">
      <title id="${id}-title">${input.title}</title>
      <desc id="${id}-desc">
        Stacked bars per day from ${days[0] ?? ''} to ${days[days.length - 1] ?? ''}; total
        ${format(totalAll)}. The table below has the same numbers.
      </desc>
      ${ticks} ${bars} ${labels}
    </svg>
    <ul class="legend">
      ${shown.map(
        (s, k) =>
          html`<li>
            <svg viewBox="0 0 10 10" aria-hidden="true">
              <rect width="10" height="10" fill="${COLOURS[k % COLOURS.length]}" /></svg
            >${s.name}: ${format(sum(s.values))}
          </li>`,
      )}
    </ul>
    <figcaption>
      <details>
        <summary>${input.title} as a table</summary>
        <div class="scroll">
          <table>
            <caption>
              ${input.title}
            </caption>
            <thead>
              <tr>
                <th scope="col">Day</th>
                ${shown.map((s) => html`<th scope="col" class="num">${s.name}</th>`)}
                <th scope="col" class="num">Total</th>
              </tr>
            </thead>
            <tbody>
              ${days.map(
                (day, i) =>
                  html`<tr>
                    <th scope="row">${day}</th>
                    ${shown.map((s) => html`<td class="num">${format(s.values[i] ?? 0)}</td>`)}
                    <td class="num">${format(totals[i] ?? 0)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>
        </div>
      </details>
    </figcaption>
  </figure>`;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function compact(value: number): string {
  return new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 }).format(
    value,
  );
}

/** Every UTC day from `from` (inclusive) for `count` days, as YYYY-MM-DD. */
export function dayRange(from: Date, count: number): string[] {
  const start = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate());
  return Array.from({ length: count }, (_, i) =>
    new Date(start + i * 86_400_000).toISOString().slice(0, 10),
  );
}
