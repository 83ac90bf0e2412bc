// Charts of invocation records, drawn as SVG: invocations, errors and duration per time bucket.

import { h, parseScfTime, s } from "./ui.js";

const W = 360;
const H = 170;
const PAD = { l: 36, r: 6, t: 10, b: 22 };

/** Groups records (GetFunctionLogs `Data`) into `n` buckets ending at `end` (a Date), each `stepMs` wide. */
export function bucket(records, end, n, stepMs) {
  const start = end.getTime() - n * stepMs;
  const out = Array.from({ length: n }, (_, i) => ({
    at: new Date(start + i * stepMs), count: 0, errors: 0, durSum: 0, durMax: 0,
  }));
  for (const r of records) {
    const t = parseScfTime(r.StartTime).getTime();
    const i = Math.floor((t - start) / stepMs);
    if (i < 0 || i >= n) continue;
    const b = out[i];
    b.count++;
    if (r.RetCode !== 0) b.errors++;
    const d = Number(r.Duration) || 0;
    b.durSum += d;
    b.durMax = Math.max(b.durMax, d);
  }
  return out;
}

/** A top of the axis whose four steps are round numbers (whole ones for counts). */
function niceMax(v, whole = false) {
  if (v <= 0) return whole ? 4 : 1;
  const raw = v / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * p;
  for (const m of [1, 2, 2.5, 5]) {
    if (raw <= m * p) { step = m * p; break; }
  }
  if (whole) step = Math.max(1, Math.ceil(step));
  return step * 4;
}

function tick(v) {
  return String(Math.round(v * 100) / 100);
}

function frame(max, buckets, unit) {
  const g = [];
  const ih = H - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + ih - (ih * i) / 4;
    const v = (max * i) / 4;
    g.push(s("line", { class: "grid-line", x1: PAD.l, x2: W - PAD.r, y1: y, y2: y }));
    g.push(s("text", { class: "label", x: PAD.l - 6, y: y + 3, "text-anchor": "end" },
      `${tick(v)}${unit}`));
  }
  const iw = W - PAD.l - PAD.r;
  const step = Math.max(1, Math.ceil(buckets.length / 6));
  buckets.forEach((b, i) => {
    if (i % step) return;
    const x = PAD.l + (iw * (i + 0.5)) / buckets.length;
    const label = b.at.toISOString().slice(11, 16);
    g.push(s("text", { class: "label", x, y: H - 6, "text-anchor": "middle" }, label));
  });
  g.push(s("line", { class: "axis", x1: PAD.l, x2: W - PAD.r, y1: PAD.t + ih, y2: PAD.t + ih }));
  return g;
}

function svg(title, children) {
  return s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title }, s("title", null, title), children);
}

/** A bar chart of `value(bucket)`. */
export function barChart(title, buckets, value, { bad = false, total } = {}) {
  const vals = buckets.map(value);
  const max = niceMax(Math.max(0, ...vals), true);
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const bw = iw / buckets.length;
  const bars = vals.map((v, i) => {
    const bh = (ih * v) / max;
    return s("rect", {
      class: bad ? "bar bad" : "bar", x: PAD.l + i * bw + bw * 0.15, y: PAD.t + ih - bh,
      width: Math.max(1, bw * 0.7), height: bh,
    }, s("title", null, `${buckets[i].at.toISOString().slice(11, 16)} UTC: ${v}`));
  });
  const sum = vals.reduce((a, b) => a + b, 0);
  return h("figure.chart.card", { "data-chart": title },
    h("h3", null, title), h("div.total", null, total !== undefined ? total : sum),
    svg(title, [frame(max, buckets, ""), bars]));
}

/** Average and maximum duration per bucket (buckets without calls are gaps). */
export function durationChart(title, buckets) {
  const avg = buckets.map((b) => (b.count ? b.durSum / b.count : null));
  const mx = buckets.map((b) => (b.count ? b.durMax : null));
  const max = niceMax(Math.max(0, ...mx.filter((v) => v !== null)));
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const path = (vals) => {
    let d = "";
    let pen = false;
    vals.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const x = PAD.l + (iw * (i + 0.5)) / vals.length;
      const y = PAD.t + ih - (ih * v) / max;
      d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = true;
    });
    return d.trim();
  };
  const dots = avg.map((v, i) => (v === null ? null : s("circle", {
    class: "bar", r: 2.5, cx: PAD.l + (iw * (i + 0.5)) / avg.length, cy: PAD.t + ih - (ih * v) / max,
  })));
  const calls = buckets.reduce((a, b) => a + b.count, 0);
  const overall = calls ? buckets.reduce((a, b) => a + b.durSum, 0) / calls : 0;
  return h("figure.chart.card", { "data-chart": title },
    h("h3", null, title), h("div.total", null, calls ? `${overall.toFixed(1)} ms avg` : "—"),
    svg(title, [frame(max, buckets, ""), s("path", { class: "line max", d: path(mx) }),
      s("path", { class: "line", d: path(avg) }), dots]));
}

/** An alias's traffic split as a stacked bar with a legend. `[{version, weight}]`, weights summing to 1. */
export function weightBar(split) {
  const label = (v) => (/^\d+$/.test(v) ? `v${v}` : v);
  let x = 0;
  const parts = split.map((p, i) => {
    const r = s("rect", { class: `w${Math.min(i, 3)}`, x: x * 100, y: 0, width: p.weight * 100, height: 10 },
      s("title", null, `${label(p.version)}: ${Math.round(p.weight * 100)}%`));
    x += p.weight;
    return r;
  });
  return h("div.weights", null,
    s("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" }, parts),
    h("span", null, split.filter((p) => p.weight > 0 || split.length === 1).map((p) => `${label(p.version)} ${Math.round(p.weight * 1000) / 10}%`).join(" · ")));
}
