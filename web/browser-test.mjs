// The browser build, end to end: serves dist/ on 127.0.0.1 and opens it in headless Chromium
// with WebGPU on its software (SwiftShader) adapter. First, a corpus file goes through the
// page's file picker. Then the page trains STEPS steps, and `srgptStatus()` must show that an
// adapter was found and every mode the page chose trained all STEPS steps, with a finite val
// loss and a train loss that fell; once the page is idle (a frame waits for a whole step on a
// software adapter, too long for a screenshot), a screenshot must show every mode's line
// inside the loss plot's frame (which the page reports; the legend is outside it), each
// spanning most of its width on its own. Then the same run is interrupted by a reload and
// continued from the snapshot the page kept in the browser, with the first run's losses.
// Before that, a tokenizer.json fetched by the page tokenizes its corpus for two steps.
// Last, the page opened in a Chromium without WebGPU
// must say so.
//
//   node web/browser-test.mjs [DIST] [SCREENSHOT.png]
//
// CHROMIUM names the browser binary (default /usr/bin/chromium). Exits non-zero on failure.

import { createServer } from "node:http";
import { readFile, writeFile, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";
import { PNG } from "pngjs";

const dist = process.argv[2] ?? "dist";
const screenshotPath = process.argv[3] ?? join(await mkdtemp(join(tmpdir(), "srgpt-web-")), "page.png");
// steps are few: each takes ~6 s per mode on SwiftShader, and the checks need only a falling
// loss and curves across the plot
const STEPS = 8;
// the page keeps a snapshot every SAVE_EVERY steps; the reload waits for one at step KEPT or later
const SAVE_EVERY = 5;
const KEPT = 5;
const TIMEOUT_S = Number(process.env.SRGPT_WEB_TIMEOUT_S ?? 900);

// the curve colours of ui::mode_color
const MODE_COLORS = { "fp32": [66, 133, 244], "mixed": [171, 71, 188], "bf16": [234, 67, 53], "bf16-sr": [52, 168, 83], "bf16-kahan": [251, 140, 0] };

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  try {
    const body = await readFile(join(dist, path === "/" ? "index.html" : path));
    res.writeHead(200, { "content-type": TYPES[extname(path) || ".html"] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/`;

const QUIET = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];
const launch = (args) => chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, args: [...QUIET, ...args] });
const browser = await launch([
  "--disable-gpu-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-angle=swiftshader",
]);

let failed = false;
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  failed ||= !ok;
}

// The corpus comes through the browser's file picker, on a page that has not started:
// "Choose file…" sits right of the corpus label at the top of the controls (egui draws into
// the canvas, so there is no DOM to query).
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${url}?autostart=0`, { timeout: 120000 });
  await page.waitForFunction(() => JSON.parse(window.srgptStatus()).adapter, null, { timeout: 180000 });
  const chooser = page.waitForEvent("filechooser", { timeout: 60000 });
  await page.mouse.move(183, 63);
  await page.waitForTimeout(500);
  await page.mouse.down();
  await page.waitForTimeout(100);
  await page.mouse.up();
  await (await chooser).setFiles({ name: "verses.txt", mimeType: "text/plain", buffer: Buffer.from("to be or not to be\n".repeat(200)) });
  await page.waitForFunction(() => JSON.parse(window.srgptStatus()).corpus === "verses.txt", null, { timeout: 120000 });
  check(true, "a corpus chosen with the file picker became the page's corpus");
  await page.close();
} catch (e) {
  console.log(`FAIL file picker: ${e.stack ?? e}`);
  failed = true;
}

// A tokenizer.json fetched from beside the page (?tokenizer=tok.json, a BPE the test wrote):
// the page reads it with the tokenizers library built for wasm and trains two steps under it,
// its model's vocabulary the tokenizer's (an untrained model's loss is ln V).
try {
  const tok = JSON.parse(await readFile(join(dist, "tok.json"), "utf8"));
  const vocab = Math.max(...Object.values(tok.model.vocab), ...tok.added_tokens.map((t) => t.id)) + 1;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${url}?tokenizer=tok.json&steps=2&batch=2&ctx=16&modes=bf16-sr`, { timeout: 120000 });
  const status = await runToEnd(page, "the tokenizer.json run");
  check(status.tokenizer === "tok.json" && !status.error && status.step === 2,
    `a fetched tokenizer.json trained 2 steps (tokenizer ${status.tokenizer}, step ${status.step}, ${status.error ?? "no error"})`);
  const first = (await page.evaluate(() => window.srgptMetrics())).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
    .find((l) => l.val_loss !== undefined && l.val_loss !== null);
  check(first && Math.abs(first.val_loss - Math.log(vocab)) < 0.3,
    `its model has the tokenizer's ${vocab} tokens: untrained val loss ${first?.val_loss} near ln ${vocab} = ${Math.log(vocab).toFixed(3)}`);
  await context.close();
} catch (e) {
  console.log(`FAIL tokenizer.json: ${e.stack ?? e}`);
  failed = true;
}

// The page's default modes, STEPS steps, keeping snapshots as the reload below does: this run
// is also the uninterrupted run whose losses the continued one must repeat
// at a quarter of the tiny preset's batch: a step costs SwiftShader seconds, and every check
// below holds at any batch
const QUERY = `?steps=${STEPS}&save_every=${SAVE_EVERY}&batch=8`;
let want = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const log = [];
  page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(`${url}${QUERY}`, { timeout: 120000 });

  const started = Date.now();
  const first = {};
  let status = null;
  for (;;) {
    status = JSON.parse(await page.evaluate(() => window.srgptStatus()));
    for (const r of status.runs ?? []) {
      if (r.train_loss !== null && !(r.precision in first)) first[r.precision] = { step: r.step, loss: r.train_loss };
    }
    if (status.error || (status.done && !status.running)) break;
    if (Date.now() - started > TIMEOUT_S * 1000) {
      console.log(`gave up after ${TIMEOUT_S} s`);
      break;
    }
    await new Promise((ok) => setTimeout(ok, 1000));
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`after ${seconds} s: ${JSON.stringify(status)}`);

  check(typeof status.adapter === "string" && status.adapter.length > 0, `a WebGPU adapter was found (${status.adapter})`);
  check(!status.error, `no error (${status.error ?? "none"})`);
  check(status.step === STEPS, `${STEPS} steps ran (${status.step})`);
  const requested = status.modes ?? [];
  check(requested.length >= 2, `the page trains its default modes (${requested.join(", ")})`);
  for (const mode of requested) {
    const r = status.runs.find((run) => run.precision === mode);
    const f = first[mode];
    check(r && r.step === STEPS, `${mode}: trained to its final step (${r?.step} of ${STEPS})`);
    check(r && Number.isFinite(r.val_loss), `${mode}: a finite val loss (${r?.val_loss})`);
    check(r && f && r.train_loss < f.loss, `${mode}: train loss fell from ${f?.loss} (step ${f?.step}) to ${r?.train_loss} (step ${r?.step})`);
  }

  check(status.done && !status.running, "the page finished its steps and went idle");
  // let a few idle frames draw the final state before the picture
  await page.waitForTimeout(1500);
  const png = PNG.sync.read(await page.screenshot({ path: screenshotPath, timeout: 120000 }));
  console.log(`screenshot: ${screenshotPath}`);
  // the loss plot's frame as the page last drew it; the legend is above it, outside
  const drawn = JSON.parse(await page.evaluate(() => window.srgptStatus())).loss_plot_px;
  const [x0, y0, x1, y1] = (drawn ?? [0, 0, 0, 0]).map(Math.round);
  check(x1 - x0 > 200 && y1 - y0 > 100 && x1 <= png.width && y1 <= png.height, `the loss plot is at ${x0},${y0}-${x1},${y1} of ${png.width}x${png.height}`);
  const near = (i, [r, g, b]) =>
    Math.abs(png.data[i] - r) <= 12 && Math.abs(png.data[i + 1] - g) <= 12 && Math.abs(png.data[i + 2] - b) <= 12;
  // each mode's line on its own spans most of the plot's width: its validation dots cover a
  // few dozen columns, its line all of them, and an earlier mode's line, drawn wider, shows
  // as a border around the later ones where they coincide
  for (const mode of requested) {
    const columns = new Set();
    for (let y = Math.max(y0, 0); y < Math.min(y1, png.height); y++) {
      for (let x = Math.max(x0, 0); x < Math.min(x1, png.width); x++) {
        if (near((y * png.width + x) * 4, MODE_COLORS[mode])) columns.add(x);
      }
    }
    const span = columns.size / Math.max(x1 - x0, 1);
    check(span >= 0.7, `${mode}: its line spans ${(span * 100).toFixed(0)}% of the loss plot's width`);
  }
  want = await lossesOf(page);
  if (failed) console.log(`browser console:\n${log.join("\n")}`);
  await context.close();
} catch (e) {
  console.log(`FAIL ${e.stack ?? e}`);
  failed = true;
}

// A run kept in the browser survives a reload. The page keeps a snapshot in its private file
// system every SAVE_EVERY steps; once it has kept one at step KEPT or later, the page is loaded
// again with ?continue=1 and continues from the newest snapshot, and every loss after that
// must equal the uninterrupted run's above, bit for bit. Each run has a browser context of its
// own, so each starts with an empty private file system.
async function statusOf(page) {
  return JSON.parse(await page.evaluate(() => window.srgptStatus()));
}

async function runToEnd(page, what) {
  const started = Date.now();
  for (;;) {
    const status = await statusOf(page);
    if (status.error || (status.done && !status.running)) return status;
    if (Date.now() - started > TIMEOUT_S * 1000) throw new Error(`${what}: not done after ${TIMEOUT_S} s: ${JSON.stringify(status)}`);
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

// metrics.jsonl lines without their timings, by run, step and kind
async function lossesOf(page) {
  const text = await page.evaluate(() => window.srgptMetrics());
  const lines = new Map();
  for (const line of text.split("\n").filter((l) => l.trim())) {
    const { run, step, tokens, lr, train_loss, val_loss } = JSON.parse(line);
    lines.set(`${run} step ${step} ${train_loss !== undefined ? "train" : "val"}`, JSON.stringify({ tokens, lr, train_loss, val_loss }));
  }
  return lines;
}

try {
  if (!want) throw new Error("no uninterrupted run to compare with");
  const parts = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await parts.newPage();
  const log = [];
  page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
  await page.goto(`${url}${QUERY}`, { timeout: 120000 });
  await page.waitForFunction((kept) => (JSON.parse(window.srgptStatus()).saved_step ?? 0) >= kept, KEPT, { timeout: TIMEOUT_S * 1000 });
  const before = await statusOf(page);
  console.log(`     kept a snapshot at step ${before.saved_step}; reloading at step ${before.step}`);
  await page.goto(`${url}${QUERY}&continue=1`, { timeout: 120000 });
  await page.waitForFunction(() => JSON.parse(window.srgptStatus()).adapter, null, { timeout: 180000 });
  const offered = (await statusOf(page)).saved;
  check(offered && offered.step >= KEPT, `after the reload the page found the kept run (step ${offered?.step})`);
  const after = await runToEnd(page, "the continued run");
  check(!after.error && after.step === STEPS, `the continued run reached step ${after.step} (${after.error ?? "no error"})`);
  check(after.continued_from === offered?.step, `the page continued from the kept step, not from scratch (from ${after.continued_from})`);
  const got = await lossesOf(page);
  const from = offered?.step ?? STEPS;
  const missing = [...want.keys()].filter((k) => Number(k.split(" ")[2]) > from && !got.has(k));
  const differ = [...got.entries()].filter(([k, v]) => want.get(k) !== v);
  check(missing.length === 0, `every step after the reload was trained (${missing.length} missing${missing.length ? `: ${missing.slice(0, 3)}` : ""})`);
  check(differ.length === 0 && got.size > 0,
    `every loss of the continued run equals the uninterrupted run's, bit for bit (${got.size} lines; ${differ.length} differ${differ.length ? `: ${JSON.stringify(differ[0])} vs ${want.get(differ[0][0])}` : ""})`);
  if (failed) console.log(`browser console:\n${log.join("\n")}`);
  await parts.close();
} catch (e) {
  console.log(`FAIL reload: ${e.stack ?? e}`);
  failed = true;
} finally {
  await browser.close();
}

// Without WebGPU (WebGPU turned off, GPU off): the page must say what is missing and how to
// get it, and srgptStatus() must carry the reason.
const plain = await launch(["--disable-gpu", "--disable-features=WebGPU"]);
try {
  const page = await plain.newPage();
  await page.goto(url, { timeout: 120000 });
  await page.waitForFunction(() => JSON.parse(window.srgptStatus?.() ?? "{}").error, null, { timeout: 180000 });
  const status = JSON.parse(await page.evaluate(() => window.srgptStatus()));
  const text = await page.locator("#message").innerText();
  check(status.adapter === null && /WebGPU/.test(status.error), `without WebGPU the status says why (${status.error})`);
  check(await page.locator("#message").isVisible() && /Chrome/.test(text) && /Safari/.test(text) && /Firefox/.test(text),
    "without WebGPU the page names the browsers and flags that have it");
} catch (e) {
  console.log(`FAIL without WebGPU: ${e.stack ?? e}`);
  failed = true;
} finally {
  await plain.close();
  server.close();
}
process.exit(failed ? 1 : 0);
