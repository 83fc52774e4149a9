// Artillery processor for bench/ws_engine.py: meters every received tick the way bench's Python
// baselines do (parse, count, gaps in tick numbers, lag against the tick's own timestamp).
// Lag goes into log buckets of 1% (the HDR histograms' precision); each worker thread rewrites
// its own JSON file once a second: {t, connected, seconds: {sec: [messages, missed, {bucket: n}]}}.
"use strict";
const fs = require("fs");
const { threadId } = require("worker_threads");

const OUT = `${process.env.BENCH_OUT || "/tmp/bench-artillery"}.${process.pid}.${threadId}.json`;
const LOG_STEP = Math.log(1.01);
const seconds = {};
let connected = 0;

function now() {
  return (performance.timeOrigin + performance.now()) / 1000; // sub-millisecond, unlike Date.now()
}

function bucket(sec) {
  let b = seconds[sec];
  if (b === undefined) b = seconds[sec] = [0, 0, {}];
  return b;
}

function write() {
  const tmp = OUT + ".tmp";
  fs.writeFileSync(tmp, JSON.stringify({ t: now(), connected, seconds }));
  fs.renameSync(tmp, OUT);
}
const timer = setInterval(write, 1000);
timer.unref();
process.on("exit", write);

function attach(context, events, next) {
  const ws = context.ws;
  let last = -1;
  connected += 1;
  ws.on("message", (data) => {
    const t = now();
    const msg = JSON.parse(data);
    if (msg.type !== "tick") return;
    const b = bucket(Math.floor(t));
    b[0] += 1;
    if (last >= 0 && msg.tick - last > 1) b[1] += msg.tick - last - 1;
    last = msg.tick;
    const lagUs = Math.max(1, Math.round((t - msg.ts) * 1e6));
    const index = Math.floor(Math.log(lagUs) / LOG_STEP);
    b[2][index] = (b[2][index] || 0) + 1;
  });
  ws.on("close", () => {
    connected -= 1;
  });
  next();
}

module.exports = { attach };
