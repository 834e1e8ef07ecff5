// Headless Chromium driven over the DevTools protocol (no npm packages):
// open DIR/index.html at each width with device-metrics emulation (so a
// 375 px phone viewport is possible; plain --window-size stops at 500 px),
// save a full-page PNG, and report horizontal overflow. Remote requests are
// answered locally: images with a placeholder picture, anything else fails.
//
// node --experimental-websocket scripts/browser-check.mjs DIR SHOTS_DIR WIDTH...
// Env: CHROMIUM (default chromium); TILES=N also saves N px tall slices.
// Exit 1 on overflow or failure.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [dir, shots, ...widthArgs] = process.argv.slice(2);
if (!dir || !shots || widthArgs.length === 0) {
  console.error("usage: browser-check.mjs DIR SHOTS_DIR WIDTH...");
  process.exit(2);
}
if (typeof WebSocket === "undefined") {
  console.error("browser-check: run node with --experimental-websocket (Node 20) or use Node >= 22");
  process.exit(2);
}
const widths = widthArgs.map(Number);
const page = pathToFileURL(resolve(dir, "index.html")).href;

const PLACEHOLDER = Buffer.from(
  `<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="800" viewBox="0 0 1200 800">` +
    `<rect width="1200" height="800" fill="#b8c4d0"/>` +
    `<path d="M0 800 L420 360 L700 620 L900 460 L1200 760 L1200 800 Z" fill="#8797a8"/>` +
    `<circle cx="930" cy="220" r="90" fill="#e3e9ef"/></svg>`,
).toString("base64");

const profile = mkdtempSync(join(tmpdir(), "herald-chromium-"));
const chromium = spawn(
  process.env.CHROMIUM || "chromium",
  [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", `--user-data-dir=${profile}`, "--remote-debugging-port=0",
    "about:blank",
  ],
  { stdio: "ignore" },
);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failed = false;
const deadline = setTimeout(() => {
  console.error("browser-check: timed out");
  cleanup(1);
}, 60_000);

function cleanup(code) {
  clearTimeout(deadline);
  try { chromium.kill("SIGTERM"); } catch {}
  setTimeout(() => {
    try { rmSync(profile, { recursive: true, force: true }); } catch {}
    process.exit(code);
  }, 300);
}

// DevToolsActivePort: first line the port, second the browser socket path.
let endpoint;
for (let i = 0; i < 100 && !endpoint; i++) {
  const f = join(profile, "DevToolsActivePort");
  if (existsSync(f)) {
    const [port, path] = readFileSync(f, "utf8").split("\n");
    if (port && path) endpoint = `ws://127.0.0.1:${port}${path}`;
  }
  if (!endpoint) await sleep(100);
}
if (!endpoint) {
  console.error("browser-check: Chromium did not open its DevTools port");
  cleanup(1);
} else {
  try {
    await run(endpoint);
  } catch (e) {
    console.error(`browser-check: ${e.message}`);
    failed = true;
  }
  cleanup(failed ? 1 : 0);
}

async function run(url) {
  const ws = new WebSocket(url);
  await new Promise((ok, err) => {
    ws.onopen = ok;
    ws.onerror = () => err(new Error("cannot connect to Chromium"));
  });
  let nextId = 1;
  const pending = new Map();
  const listeners = [];
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.id && pending.has(msg.id)) {
      const { ok, err } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? err(new Error(`${msg.error.message}`)) : ok(msg.result);
    } else if (msg.method) {
      for (const l of listeners) l(msg);
    }
  };
  const send = (method, params = {}, sessionId) =>
    new Promise((ok, err) => {
      const id = nextId++;
      pending.set(id, { ok, err });
      ws.send(JSON.stringify({ id, method, params, sessionId }));
    });
  const once = (method) =>
    new Promise((ok) => {
      const l = (msg) => {
        if (msg.method === method) {
          listeners.splice(listeners.indexOf(l), 1);
          ok(msg.params);
        }
      };
      listeners.push(l);
    });

  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  const s = (method, params) => send(method, params, sessionId);

  listeners.push((msg) => {
    if (msg.method !== "Fetch.requestPaused" || msg.sessionId !== sessionId) return;
    const { requestId, resourceType } = msg.params;
    if (resourceType === "Image") {
      s("Fetch.fulfillRequest", {
        requestId,
        responseCode: 200,
        responseHeaders: [{ name: "Content-Type", value: "image/svg+xml" }],
        body: PLACEHOLDER,
      }).catch(() => {});
    } else {
      s("Fetch.failRequest", { requestId, errorReason: "InternetDisconnected" }).catch(() => {});
    }
  });
  await s("Fetch.enable", { patterns: [{ urlPattern: "http*" }] });
  await s("Page.enable");

  for (const width of widths) {
    const mobile = width < 500;
    await s("Emulation.setDeviceMetricsOverride", { width, height: 900, deviceScaleFactor: 1, mobile });
    const loaded = once("Page.loadEventFired");
    await s("Page.navigate", { url: page });
    await loaded;
    await sleep(200);
    const { result } = await s("Runtime.evaluate", {
      returnByValue: true,
      expression: `(() => {
        const d = document.documentElement, b = document.body;
        return { viewport: d.clientWidth, inner: window.innerWidth,
                 scroll: Math.max(d.scrollWidth, b.scrollWidth),
                 height: Math.max(d.scrollHeight, b.scrollHeight) };
      })()`,
    });
    const m = result.value;
    const { data } = await s("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width, height: m.height, scale: 1 },
    });
    const shot = join(shots, `issue-${width}px.png`);
    writeFileSync(shot, Buffer.from(data, "base64"));
    // TILES=N: also save the page in N px tall slices, easier to look at.
    const tile = Number(process.env.TILES || 0);
    for (let y = 0, n = 1; tile > 0 && y < m.height; y += tile, n++) {
      const part = await s("Page.captureScreenshot", {
        format: "png",
        captureBeyondViewport: true,
        clip: { x: 0, y, width, height: Math.min(tile, m.height - y), scale: 1 },
      });
      writeFileSync(join(shots, `issue-${width}px-${n}.png`), Buffer.from(part.data, "base64"));
    }
    if (m.viewport !== width) {
      console.error(`browser-check: ${width}px: FAIL: the layout viewport came out ${m.viewport}px wide`);
      failed = true;
    } else if (m.scroll > width) {
      console.error(`browser-check: ${width}px: FAIL: horizontal overflow, page ${m.scroll}px wide > viewport ${width}px (${shot})`);
      failed = true;
    } else {
      console.log(`browser-check: ${width}px: ok: page ${m.scroll}px wide, ${m.height}px tall (${shot})`);
    }
  }
  await send("Browser.close").catch(() => {});
}
