// Live charts of a game-loadtest run, drawn on <canvas> from /loadtest/series.json every 2 s.
// No library and no inline script: the page's Content-Security-Policy allows only this file.
"use strict";

const REFRESH_MS = 2000;
const COLOURS = { p50: "#1f77b4", p5: "#ff7f0e", min: "#9467bd", nominal: "#555", threshold: "#d62728",
                  players: "#2ca02c", planned: "#555", limited: "#d62728", attempts: "#1f77b4", dropped: "#7b2d26" };

function frame(canvas, yMin, yMax, xMax, yLabel) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1);
  const h = canvas.height = canvas.clientHeight * (window.devicePixelRatio || 1);
  ctx.setTransform(window.devicePixelRatio || 1, 0, 0, window.devicePixelRatio || 1, 0, 0);
  const cw = canvas.clientWidth, ch = canvas.clientHeight;
  const pad = { l: 52, r: 12, t: 10, b: 28 };
  ctx.clearRect(0, 0, cw, ch);
  ctx.font = "12px sans-serif";
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#333"; ctx.lineWidth = 1;
  ctx.strokeRect(pad.l, pad.t, cw - pad.l - pad.r, ch - pad.t - pad.b);
  const x = (t) => pad.l + (xMax > 0 ? t / xMax : 0) * (cw - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - yMin) / ((yMax - yMin) || 1)) * (ch - pad.t - pad.b);
  for (let i = 0; i <= 4; i++) {
    const v = yMin + (yMax - yMin) * i / 4;
    ctx.fillText(Math.abs(v) >= 100 || yMax - yMin >= 8 ? v.toFixed(0) : v.toFixed(1), 4, y(v) + 4);
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(cw - pad.r, y(v)); ctx.strokeStyle = "#eee"; ctx.stroke();
  }
  ctx.fillText("0 s", pad.l, ch - 8);
  ctx.fillText(xMax + " s", cw - pad.r - 40, ch - 8);
  ctx.fillText(yLabel, pad.l + 6, pad.t + 14);
  return { ctx, x, y };
}

// A line that breaks where a value is missing: a second without data is a gap, never a join.
function line(f, ts, values, colour, dash, width) {
  const { ctx, x, y } = f;
  ctx.strokeStyle = colour; ctx.lineWidth = width || 1.5; ctx.setLineDash(dash || []);
  ctx.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) { drawing = false; return; }
    if (drawing) ctx.lineTo(x(ts[i]), y(v)); else ctx.moveTo(x(ts[i]), y(v));
    drawing = true;
  });
  ctx.stroke(); ctx.setLineDash([]);
}

function hline(f, value, xMax, colour, dash) { line(f, [0, xMax], [value, value], colour, dash, 1); }

function bars(f, ts, values, colour) {
  const { ctx, x, y } = f;
  ctx.fillStyle = colour;
  const width = Math.max(1, x(1) - x(0) - 1);
  values.forEach((v, i) => { if (v) ctx.fillRect(x(ts[i]), y(v), width, y(0) - y(v)); });
}

function numbers(rows, key) { return rows.map((r) => r[key]); }

function draw(data) {
  const rows = data.rows;
  const ts = rows.map((r) => r.t);
  const xMax = Math.max(10, ts.length ? ts[ts.length - 1] + 1 : 0);
  const rates = [].concat(numbers(rows, "p50"), numbers(rows, "p5"), numbers(rows, "min")).filter((v) => v !== null);
  const refs = [data.nominal_hz, data.threshold_hz].filter((v) => v);
  const all = rates.concat(refs);
  let lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
  const pad = Math.max(1, 0.15 * (hi - lo));
  lo = Math.max(0, lo - pad); hi = hi + pad;

  const tick = frame(document.getElementById("tick"), lo, hi, xMax, "Hz");
  if (data.nominal_hz) hline(tick, data.nominal_hz, xMax, COLOURS.nominal, [6, 4]);
  if (data.threshold_hz) hline(tick, data.threshold_hz, xMax, COLOURS.threshold, [2, 3]);
  line(tick, ts, numbers(rows, "min"), COLOURS.min, [1, 2], 1);
  line(tick, ts, numbers(rows, "p5"), COLOURS.p5, [5, 2]);
  line(tick, ts, numbers(rows, "p50"), COLOURS.p50);

  const players = numbers(rows, "players");
  const top = Math.max(1, data.planned_users || 0, ...players) * 1.15;
  const load = frame(document.getElementById("players"), 0, top, xMax, "players");
  if (data.planned_users) hline(load, data.planned_users, xMax, COLOURS.planned, [6, 4]);
  line(load, ts, players, COLOURS.players);

  const limited = numbers(rows, "limited");
  const l429 = frame(document.getElementById("limited"), 0, Math.max(1, ...limited) * 1.15, xMax, "429s/s");
  bars(l429, ts, limited, COLOURS.limited);

  const attempts = numbers(rows, "attempts"), dropped = numbers(rows, "dropped");
  const rc = frame(document.getElementById("reconnects"), 0, Math.max(1, ...attempts, ...dropped) * 1.15, xMax, "per s");
  line(rc, ts, dropped, COLOURS.dropped);
  line(rc, ts, attempts, COLOURS.attempts, [5, 2]);

  const last = rows.length ? rows[rows.length - 1] : null;
  document.getElementById("state").textContent = data.running
    ? `Running: ${rows.length} second(s) settled` + (last && last.p50 !== null ? `, tick p50 ${last.p50} Hz` : "") +
      (last ? `, ${last.players} players.` : ".")
    : "No test is running; the charts show the last test's seconds.";
  document.getElementById("nominal").textContent = data.nominal_hz ? `${data.nominal_hz} Hz` : "not known yet";
  document.getElementById("threshold").textContent = data.threshold_hz ? `${data.threshold_hz} Hz` : "not known yet";
  document.body.dataset.seconds = String(rows.length);
}

async function refresh() {
  try {
    const response = await fetch("series.json", { cache: "no-store" });
    if (response.ok) draw(await response.json());
  } catch (err) {
    document.getElementById("state").textContent = "The load test is not answering: " + err;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
