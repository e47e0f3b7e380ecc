#!/usr/bin/env node
// Helper of test_flamegraph.py: the checks that need Node.js. It gathers
// facts and prints them as one JSON object; the Python test judges them.
//
//   node flamegraph_browser.js NPM_DIR validate SCHEMA.json FILE.json
//       speedscope's file against its schema, with ajv:
//       {"valid": bool, "errors": [...]}
//   node flamegraph_browser.js NPM_DIR svg FILE.svg SCREENSHOT.png [SEARCH_TERM]
//       opens the SVG in headless Debian Chromium (playwright-core) and
//       reports: load time, frames, a screenshot, what a hover, a click
//       (zoom), Reset Zoom and a search do, and every request the page made.
'use strict';
const fs = require('fs');
const path = require('path');

const [npmDir, command, ...args] = process.argv.slice(2);
const need = (name) => require(path.join(npmDir, 'node_modules', name));

function validate(schemaPath, filePath) {
  const Ajv = need('ajv');
  const ajv = new Ajv({allErrors: true, strict: false});
  const check = ajv.compile(JSON.parse(fs.readFileSync(schemaPath, 'utf8')));
  const valid = check(JSON.parse(fs.readFileSync(filePath, 'utf8')));
  return {valid, errors: (check.errors || []).slice(0, 20)};
}

// Facts about frame number `index` (in document order) as drawn now.
function frameFacts(page, index) {
  return page.evaluate((i) => {
    const f = allFrames()[i];
    const box = f.rect.getBoundingClientRect();
    return {name: f.name, depth: f.depth, x: +f.rect.getAttribute('x'),
            width: +f.rect.getAttribute('width'),
            shown: getComputedStyle(f.rect).display !== 'none' && box.width > 0,
            label: f.text ? f.text.textContent : '', cx: box.x + box.width / 2,
            cy: box.y + box.height / 2};
  }, index);
}

function shownCount(page) {
  return page.evaluate(() =>
    allFrames().filter((f) => getComputedStyle(f.rect).display !== 'none').length);
}

async function svg(svgPath, shotPath, term) {
  const {chromium} = need('playwright-core');
  const userDir = fs.mkdtempSync(path.join(path.dirname(shotPath), 'chromium-profile-'));
  // a fresh profile directory each time (playwright passes --user-data-dir)
  const browser = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: {width: 1200, height: 900},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--process-per-site'],
  });
  const out = {requests: [], errors: []};
  try {
    const page = browser.pages()[0] || await browser.newPage();
    page.on('request', (req) => out.requests.push(req.url()));
    page.on('pageerror', (err) => out.errors.push(String(err)));
    page.on('console', (msg) => { if (msg.type() === 'error') out.errors.push(msg.text()); });
    page.on('dialog', (dialog) => dialog.accept(term || ''));

    // Load time: from navigation until the page is loaded and painted, as
    // wall time (loadMs) and as the CPU time the page's renderer process
    // spent (loadCpuMs: Chrome's ProcessTime metric, every thread of it,
    // from before the navigation; what another process takes of the
    // machine's cores does not count). The renderer is chosen when the
    // navigation starts: a blank page of the same file:// site is loaded
    // first and --process-per-site keeps the site in one renderer, so that
    // the SVG is loaded by the process measured.
    const cdp = await browser.newCDPSession(page);
    await cdp.send('Performance.enable');
    const processTime = async () => (await cdp.send('Performance.getMetrics')).metrics
      .find((m) => m.name === 'ProcessTime').value;
    const blank = path.join(path.dirname(path.resolve(shotPath)), 'blank.html');
    fs.writeFileSync(blank, '<!doctype html><title>blank</title>');
    await page.goto('file://' + blank, {waitUntil: 'load', timeout: 30000});
    out.requests.length = 0;
    const cpu0 = await processTime();
    const t0 = Date.now();
    await page.goto('file://' + path.resolve(svgPath), {waitUntil: 'load', timeout: 30000});
    await page.evaluate(() => new Promise((done) =>
      requestAnimationFrame(() => requestAnimationFrame(done))));
    out.loadMs = Date.now() - t0;
    out.loadCpuMs = Math.round((await processTime() - cpu0) * 1000);

    out.frames = await page.evaluate(() => document.querySelectorAll('#frames > rect').length);
    const full = await page.evaluate(() => FG.width - 2 * FG.pad);
    out.fullWidth = full;
    // (fullPage hangs on an SVG document: size the viewport to the graph)
    const height = await page.evaluate(() => document.documentElement.height.baseVal.value);
    await page.setViewportSize({width: 1200, height: Math.max(200, Math.min(4000, Math.ceil(height)))});
    await page.screenshot({path: shotPath, timeout: 20000});
    out.screenshot = shotPath;
    if (out.frames === 0)
      return out;

    // Hover: a tooltip and the details line show the frame's figures.
    const root = await frameFacts(page, 0);
    await page.mouse.move(root.cx, root.cy);
    out.hover = await page.evaluate(() => {
      const tip = document.getElementById('tip');
      return {details: document.getElementById('details').textContent,
              tip: [...tip.getElementsByTagName('text')].map((t) => t.textContent),
              tipShown: getComputedStyle(tip).display !== 'none'};
    });
    out.hover.name = root.name;

    // Zoom: click the widest frame that is not full width, at depth >= 2,
    // and see that it becomes full width and that frames outside it hide.
    const pick = await page.evaluate((fullWidth) => {
      const fs = allFrames();
      let best = -1, bestWidth = 0;
      for (let i = 0; i < fs.length; i++) {
        const f = fs[i], w = f.w;
        if (f.depth >= 2 && w < fullWidth * 0.9 && w > bestWidth && w > 4) {
          best = i;
          bestWidth = w;
        }
      }
      return best;
    }, full);
    if (pick >= 0) {
      const before = await frameFacts(page, pick);
      const shownBefore = await shownCount(page);
      await page.mouse.click(before.cx, before.cy);
      const after = await frameFacts(page, pick);
      const shownAfter = await shownCount(page);
      const unzoomShown = await page.evaluate(() =>
        getComputedStyle(document.getElementById('unzoom')).display !== 'none');
      await page.screenshot({path: shotPath.replace(/\.png$/, '-zoomed.png')});
      await page.click('#unzoom');
      const reset = await frameFacts(page, pick);
      out.zoom = {name: before.name, before, after, shownBefore, shownAfter, unzoomShown,
                  reset, shownReset: await shownCount(page)};
    }

    // Search through the button and its prompt (answered with term).
    if (term) {
      await page.click('#search');
      out.search = await page.evaluate(() => {
        const hits = allFrames().filter((f) => f.rect.classList.contains('hit'));
        return {hits: hits.length, names: [...new Set(hits.map((f) => f.name))].slice(0, 50),
                fill: hits.length ? getComputedStyle(hits[0].rect).fill : null,
                matched: document.getElementById('matched').textContent,
                button: document.getElementById('search').textContent};
      });
      await page.keyboard.press('Escape');
      out.searchReset = await page.evaluate(() => document.querySelectorAll('#frames .hit').length);
    }
  } finally {
    await browser.close();
    fs.rmSync(userDir, {recursive: true, force: true});
  }
  return out;
}

(async () => {
  let result;
  if (command === 'validate')
    result = validate(args[0], args[1]);
  else if (command === 'svg')
    result = await svg(args[0], args[1], args[2]);
  else
    throw new Error('unknown command ' + command);
  process.stdout.write(JSON.stringify(result) + '\n');
})().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
