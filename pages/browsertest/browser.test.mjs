// browser.test.mjs drives approvalbot's one-time page in headless Chromium the
// way a person uses it: mouse, keyboard, phone and desktop sizes, with and
// without JavaScript. It is started by browser_test.go, which runs the bot,
// creates the requests and passes their page links in a JSON file:
//
//   node browser.test.mjs config.json
//
// config: {
//   origin:      "http://127.0.0.1:PORT",   the bot (every request must go there)
//   chromium:    "/usr/bin/chromium",
//   screenshots: "/abs/dir",
//   title:       the title of every request,
//   requests:    { <scenario>: { id, pages: [url, ...] } },
//   previews:    [{ name, url }]  result pages the bot cannot be made to show on
//                demand (expired, gone, error), served by the Go test at previewOrigin
//   previewOrigin
// }
//
// It checks what happens in the browser and, through GET /api/requests/{id},
// what the bot recorded. It prints one line per failure and exits 1 if any.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const PHONE = { width: 375, height: 812 };
const DESKTOP = { width: 1280, height: 800 };
const TIMEOUT = 15000;

const failures = [];
function fail(msg) {
  failures.push(msg);
  console.error('FAIL ' + msg);
}
function check(cond, msg) {
  if (!cond) fail(msg);
}
function log(msg) {
  console.error(msg);
}

fs.mkdirSync(cfg.screenshots, { recursive: true });
const shots = [];

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

// allowed reports whether the browser may load url in a scenario.
function allowed(url, origins) {
  if (url.startsWith('data:') || url.startsWith('about:')) return true;
  return origins.some((o) => url === o || url.startsWith(o + '/'));
}

// open makes a fresh browser context (no shared cookies or cache) and records
// every request, POST to /decide, console error and CSP violation in it.
async function open(name, { viewport = PHONE, javaScriptEnabled = true, origins = [cfg.origin] } = {}) {
  const context = await browser.newContext({ viewport, javaScriptEnabled, locale: 'en-US', timezoneId: 'UTC' });
  context.setDefaultTimeout(TIMEOUT);
  const rec = { posts: [], requests: [], submits: [] };
  context.on('request', (req) => {
    const url = req.url();
    rec.requests.push(req.method() + ' ' + url);
    check(allowed(url, origins), `${name}: request to a host other than the bot's: ${url}`);
    if (req.method() === 'POST') rec.posts.push(url);
  });
  context.on('response', (res) => check(res.status() < 500, `${name}: ${res.status()} from ${res.url()}`));
  if (javaScriptEnabled) {
    // Injected by the test, not by the page, so the page's CSP does not apply.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI);
      });
      // Report the page's state each time it submits a form from script.
      const submit = HTMLFormElement.prototype.submit;
      HTMLFormElement.prototype.submit = function () {
        const state = {
          disabled: [...document.querySelectorAll('button')].every((b) => b.disabled),
          status: (document.querySelector('#sending') || {}).textContent || '',
        };
        console.info('browsertest-submit ' + JSON.stringify(state));
        return submit.call(this);
      };
    });
  }
  const page = await context.newPage();
  page.on('console', (msg) => {
    const text = msg.text();
    if (text.startsWith('browsertest-submit ')) {
      rec.submits.push(JSON.parse(text.slice('browsertest-submit '.length)));
      return;
    }
    // A result page may come with a 4xx status (not found, already decided,
    // invalid); Chromium logs that as an error. The statuses are checked where
    // they matter; a 5xx is never expected.
    const clientError = /the server responded with a status of 4\d\d/.test(text);
    if ((msg.type() === 'error' && !clientError) || /Content[- ]Security[- ]Policy/i.test(text)) {
      fail(`${name}: console ${msg.type()}: ${text}`);
    }
  });
  page.on('pageerror', (err) => fail(`${name}: uncaught page error: ${err.message}`));
  return { context, page, rec };
}

// layout checks what a person sees at the current size: nothing wider than the
// viewport, buttons at least 44 px high, text at least 16 px, contrast at least
// 4.5:1 for every visible piece of text.
async function layout(page, name) {
  const r = await page.evaluate(() => {
    const out = { overflow: 0, wide: [], small: [], low: [], short: [] };
    const de = document.documentElement;
    out.overflow = de.scrollWidth - de.clientWidth;
    const visible = (el) => {
      const s = getComputedStyle(el);
      const b = el.getBoundingClientRect();
      return s.visibility !== 'hidden' && s.display !== 'none' && b.width > 0 && b.height > 0;
    };
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return [0, 0, 0, 0];
      const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    };
    const lum = ([r, g, b]) => {
      const f = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c[3] > 0.5) return c;
      }
      return [255, 255, 255, 1];
    };
    const label = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + String(el.className).replace(/ /g, '.') : '');
    for (const el of document.querySelectorAll('body *')) {
      if (!visible(el) || el.closest('dialog:not([open])')) continue;
      const b = el.getBoundingClientRect();
      if (b.right > de.clientWidth + 0.5 || b.left < -0.5) out.wide.push(label(el) + ` (${Math.round(b.left)}..${Math.round(b.right)})`);
      if (el.matches('button, .btn, input[type=submit]') && b.height < 44) out.short.push(label(el) + ` ${b.height}px`);
      const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
      if (!ownText || el.disabled) continue;
      const s = getComputedStyle(el);
      if (parseFloat(s.fontSize) < 16) out.small.push(label(el) + ' ' + s.fontSize);
      const fg = lum(parse(s.color));
      const bg = lum(background(el));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      if (ratio < 4.5) out.low.push(label(el) + ' ' + ratio.toFixed(2));
    }
    return out;
  });
  check(r.overflow <= 0, `${name}: scrolls horizontally by ${r.overflow}px`);
  check(r.wide.length === 0, `${name}: wider than the screen: ${r.wide.join(', ')}`);
  check(r.short.length === 0, `${name}: buttons lower than 44px: ${r.short.join(', ')}`);
  check(r.small.length === 0, `${name}: text smaller than 16px: ${r.small.join(', ')}`);
  check(r.low.length === 0, `${name}: contrast below 4.5:1: ${r.low.join(', ')}`);
}

// both checks the layout and takes a full-page screenshot at phone and desktop
// size, leaving the page at phone size.
async function both(page, name) {
  for (const [size, vp] of [['375x812', PHONE], ['1280x800', DESKTOP]]) {
    await page.setViewportSize(vp);
    await layout(page, `${name}@${size}`);
    await shot(page, `${name}-${size}`);
  }
  await page.setViewportSize(PHONE);
}

// progress checks the progress display (the #progress section: its bar, its
// summary and the votes) at phone and desktop size: present, visible, inside
// the screen, and the page not scrolling sideways. It returns the summary and
// the number of votes listed, leaving the page at phone size.
async function progress(page, name) {
  let out = { text: '', votes: 0 };
  for (const [size, vp] of [['375x812', PHONE], ['1280x800', DESKTOP]]) {
    await page.setViewportSize(vp);
    const r = await page.evaluate(() => {
      const de = document.documentElement;
      const box = (el) => {
        if (!el) return null;
        const b = el.getBoundingClientRect();
        return { left: b.left, right: b.right, width: b.width, height: b.height };
      };
      const section = document.getElementById('progress');
      const parts = section ? [section, section.querySelector('progress'), document.getElementById('progress-text'), ...section.querySelectorAll('.votes li, .groups li, .quote')] : [];
      return {
        width: de.clientWidth,
        overflow: de.scrollWidth - de.clientWidth,
        section: box(section),
        bar: box(section && section.querySelector('progress')),
        parts: parts.map((el) => ({ label: el.tagName.toLowerCase() + (el.id ? '#' + el.id : ''), box: box(el) })),
        text: ((document.getElementById('progress-text') || {}).textContent || '').trim(),
        votes: section ? section.querySelectorAll('.votes li').length : 0,
      };
    });
    const at = `${name}@${size}`;
    check(r.section !== null, `${at}: no progress display (#progress)`);
    check(r.bar !== null && r.bar.width > 0 && r.bar.height > 0, `${at}: no visible progress bar`);
    check(r.overflow <= 0, `${at}: scrolls horizontally by ${r.overflow}px`);
    for (const p of r.parts) {
      check(p.box.left >= -0.5 && p.box.right <= r.width + 0.5,
        `${at}: ${p.label} (${Math.round(p.box.left)}..${Math.round(p.box.right)}) is wider than the ${r.width}px screen`);
    }
    check(/^\d+ of \d+ approvals?\b/.test(r.text), `${at}: progress says ${JSON.stringify(r.text)}, want "N of M approvals ..."`);
    out = { text: r.text, votes: r.votes };
  }
  await page.setViewportSize(PHONE);
  return out;
}

async function shot(page, name) {
  const file = path.join(cfg.screenshots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

async function api(id) {
  const res = await fetch(`${cfg.origin}/api/requests/${id}`);
  check(res.ok, `GET /api/requests/${id}: status ${res.status}`);
  return res.ok ? res.json() : {};
}

async function dialogOpen(page) {
  await page.waitForSelector('dialog#confirm[open]');
}
async function dialogClosed(page) {
  await page.waitForSelector('dialog#confirm:not([open])', { state: 'attached' });
}
// result waits for a result page and returns its heading.
async function result(page) {
  await page.waitForSelector('p.status');
  return (await page.textContent('h1')).trim();
}
// crlf undoes the CRLF line breaks that browsers submit for a textarea.
const crlf = (s) => (typeof s === 'string' ? s.replace(/\r\n/g, '\n') : s);
const active = (page) => page.evaluate(() => {
  const a = document.activeElement;
  return a ? a.id || a.getAttribute('value') || a.tagName.toLowerCase() : '';
});
const focusRing = (page) => page.evaluate(() => {
  const s = getComputedStyle(document.activeElement);
  return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
});

const scenarios = {
  // Cancel and Escape leave everything as it was; OK decides, with the comment.
  async dismiss() {
    const req = cfg.requests.dismiss;
    const { context, page, rec } = await open('dismiss');
    await page.goto(req.pages[0]);
    check((await page.title()).includes(cfg.title), `dismiss: <title> ${await page.title()} does not name the request`);
    await both(page, 'page');
    const comment = 'Looks good to me.\nShip it after lunch.';
    await page.fill('#comment', comment);

    await page.click('button[value=approve]');
    await dialogOpen(page);
    const heading = await page.textContent('#confirm-title');
    check(heading.includes('Approve') && heading.includes(cfg.title), `dismiss: dialog heading ${JSON.stringify(heading)} does not name the action and the title`);
    check((await page.textContent('#confirm-comment')).includes('Ship it after lunch'), 'dismiss: dialog does not show the comment');
    await layout(page, 'dialog@375x812');
    await shot(page, 'dialog-375x812');
    await page.setViewportSize(DESKTOP);
    await shot(page, 'dialog-1280x800');
    await page.setViewportSize(PHONE);
    await page.click('#confirm-cancel');
    await dialogClosed(page);
    check(await active(page) === 'approve', `dismiss: focus after Cancel is on ${await active(page)}, want the Approve button`);

    await page.click('button[value=reject]');
    await dialogOpen(page);
    check((await page.textContent('#confirm-title')).includes('Reject'), 'dismiss: dialog for Reject does not say Reject');
    // The second click of a double click on Reject, landing on the confirm
    // button, does not confirm.
    await page.evaluate(() => {
      document.getElementById('confirm-ok').dispatchEvent(new MouseEvent('click', { bubbles: true, detail: 2 }));
    });
    check(await page.evaluate(() => document.getElementById('confirm').open), 'dismiss: the second click of a double click confirmed');
    await page.keyboard.press('Escape');
    await dialogClosed(page);

    check(rec.posts.length === 0, `dismiss: ${rec.posts.length} POSTs after Cancel and Escape, want 0`);
    const enabled = await page.evaluate(() => [...document.querySelectorAll('button[name=decision]')].every((b) => !b.disabled));
    check(enabled, 'dismiss: buttons not usable again after Cancel');
    check(await page.inputValue('#comment') === comment, 'dismiss: comment lost after Cancel');
    const pending = await api(req.id);
    check(pending.status === 'pending', `dismiss: status after Cancel/Escape is ${pending.status}, want pending`);

    await page.click('button[value=approve]');
    await dialogOpen(page);
    await page.click('#confirm-ok');
    const h = await result(page);
    check(/approved/i.test(h), `dismiss: result heading ${JSON.stringify(h)}, want Approved`);
    check(rec.posts.length === 1, `dismiss: ${rec.posts.length} POSTs, want 1`);
    check((await page.textContent('body')).includes('Ship it after lunch'), 'dismiss: result page does not show the comment');
    await both(page, 'result-approved');
    const done = await api(req.id);
    check(done.status === 'approved', `dismiss: status ${done.status}, want approved`);
    check(done.decision && crlf(done.decision.comment) === comment, `dismiss: recorded comment ${JSON.stringify(done.decision && done.decision.comment)}, want ${JSON.stringify(comment)}`);

    // Once decided, the link says what happened (410) and holds nothing
    // that decides.
    const res = await page.goto(req.pages[0]);
    check(res.status() === 410, `dismiss: page after the decision answers ${res.status()}, want 410`);
    const gone = await result(page);
    check(/this request was approved/i.test(gone), `dismiss: reopened page says ${JSON.stringify(gone)}, want "This request was approved"`);
    check((await page.textContent('body')).includes('Ship it after lunch'), 'dismiss: the late page does not show the comment');
    check((await page.$$('form, button, input')).length === 0, 'dismiss: the late page has a form, a button or an input');
    await both(page, 'late-approved');
    // A link that names no page says it is not valid (404).
    const unknown = await page.goto(req.pages[0].replace(/\/p\/[^/]+$/, '/p/AAAAAAAAAAAAAAAAAAAAAA'));
    check(unknown.status() === 404, `dismiss: an unknown page answers ${unknown.status()}, want 404`);
    const nf = await result(page);
    check(/no longer valid/i.test(nf), `dismiss: an unknown page says ${JSON.stringify(nf)}, want "This link is no longer valid"`);
    await both(page, 'result-not-found');
    await context.close();
  },

  // A double click on OK sends one request; the buttons stay disabled while it
  // is in flight.
  async double() {
    const req = cfg.requests.double;
    const { context, page, rec } = await open('double', { viewport: DESKTOP });
    await page.goto(req.pages[0]);
    // A double click on Approve opens the dialog and decides nothing.
    await page.dblclick('button[value=approve]');
    await dialogOpen(page);
    check(rec.posts.length === 0, `double: double click on Approve sent ${rec.posts.length} POSTs, want 0`);

    // Hold the decision in flight until the buttons have been pressed again.
    // The page is then mid-navigation, where Playwright's DOM calls would wait
    // for it to finish: the state at submit time is reported by the init
    // script (see open), and the presses are raw mouse and keyboard input.
    let release;
    const held = new Promise((resolve) => {
      release = resolve;
    });
    let arrived;
    const inFlight = new Promise((resolve) => {
      arrived = resolve;
    });
    let routed = 0;
    await page.route('**/decide', async (route) => {
      routed++;
      arrived();
      await held;
      await route.continue();
    });
    const approveBox = await page.locator('button[value=approve]').boundingBox();
    const rejectBox = await page.locator('button[value=reject]').boundingBox();
    try {
      await page.dblclick('#confirm-ok', { noWaitAfter: true });
      await inFlight;
      for (const box of [approveBox, rejectBox, approveBox]) {
        await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      }
      await page.keyboard.press('Enter');
      await page.keyboard.press('Space');
    } finally {
      release();
    }
    const h = await result(page);
    check(/approved/i.test(h), `double: result heading ${JSON.stringify(h)}, want Approved`);
    check(rec.posts.length === 1 && routed === 1, `double: ${rec.posts.length} POSTs (${routed} routed), want exactly 1`);
    check(rec.submits.length === 1, `double: the page submitted ${rec.submits.length} times, want once`);
    const at = rec.submits[0] || {};
    check(at.disabled === true, 'double: buttons not disabled while the decision is in flight');
    check(/Sending/.test(at.status || ''), 'double: no "Sending" status while in flight');
    const done = await api(req.id);
    check(done.status === 'approved', `double: status ${done.status}, want approved`);
    await context.close();
  },

  // Tab, Enter and Escape alone: focus visible, dialog operable.
  async keyboard() {
    const req = cfg.requests.keyboard;
    const { context, page, rec } = await open('keyboard', { viewport: DESKTOP });
    await page.goto(req.pages[0]);
    for (let i = 0; i < 40 && (await active(page)) !== 'comment'; i++) {
      await page.keyboard.press('Tab');
    }
    check(await active(page) === 'comment', 'keyboard: Tab never reached the comment field');
    check(await focusRing(page), 'keyboard: no visible focus on the comment field');
    const comment = 'Approved from the keyboard';
    await page.keyboard.type(comment);
    await page.keyboard.press('Tab');
    check(await active(page) === 'approve', `keyboard: Tab after the comment focuses ${await active(page)}, want Approve`);
    check(await focusRing(page), 'keyboard: no visible focus on the Approve button');
    await shot(page, 'focus-1280x800');
    await page.keyboard.press('Enter');
    await dialogOpen(page);
    check(await active(page) === 'confirm-cancel', `keyboard: focus in the dialog is on ${await active(page)}, want Cancel`);
    await page.keyboard.press('Escape');
    await dialogClosed(page);
    check(await active(page) === 'approve', `keyboard: focus after Escape is on ${await active(page)}, want Approve`);
    check(rec.posts.length === 0, 'keyboard: Escape sent a request');
    await page.keyboard.press('Enter');
    await dialogOpen(page);
    await page.keyboard.press('Tab');
    check(await active(page) === 'confirm-ok', `keyboard: Tab in the dialog focuses ${await active(page)}, want the confirm button`);
    check(await focusRing(page), 'keyboard: no visible focus on the confirm button');
    await page.keyboard.press('Enter');
    const h = await result(page);
    check(/approved/i.test(h), `keyboard: result heading ${JSON.stringify(h)}, want Approved`);
    const done = await api(req.id);
    check(done.status === 'approved' && done.decision && crlf(done.decision.comment) === comment,
      `keyboard: recorded ${done.status} with comment ${JSON.stringify(done.decision && done.decision.comment)}`);
    await context.close();
  },

  async reject() {
    const req = cfg.requests.reject;
    const { context, page } = await open('reject');
    await page.goto(req.pages[0]);
    await page.click('button[value=reject]');
    await dialogOpen(page);
    check((await page.textContent('#confirm-ok')).includes('reject'), 'reject: confirm button does not say reject');
    await page.click('#confirm-ok');
    const h = await result(page);
    check(/rejected/i.test(h), `reject: result heading ${JSON.stringify(h)}, want Rejected`);
    await both(page, 'result-rejected');
    const done = await api(req.id);
    check(done.status === 'rejected', `reject: status ${done.status}, want rejected`);
    await context.close();
  },

  // Two approvers with the page open at once: the second answer is refused.
  async race() {
    const req = cfg.requests.race;
    const a = await open('race-a');
    const b = await open('race-b');
    await a.page.goto(req.pages[0]);
    await b.page.goto(req.pages[1]);
    await a.page.click('button[value=approve]');
    await dialogOpen(a.page);
    await a.page.click('#confirm-ok');
    check(/approved/i.test(await result(a.page)), 'race: first answer not approved');
    await b.page.click('button[value=reject]');
    await dialogOpen(b.page);
    await b.page.click('#confirm-ok');
    const h = await result(b.page);
    check(/already decided/i.test(h), `race: second answer shows ${JSON.stringify(h)}, want already decided`);
    check(/already decided by \S+@\S+ at /i.test(await b.page.textContent('body')), 'race: second answer does not say by whom and when');
    await both(b.page, 'result-already-decided');
    const done = await api(req.id);
    check(done.status === 'approved', `race: status ${done.status}, want approved`);
    await a.context.close();
    await b.context.close();
  },

  // A decision value the bot does not know gets a readable 4xx page.
  async invalid() {
    const req = cfg.requests.invalid;
    const { context, page } = await open('invalid');
    await page.goto(req.pages[0]);
    await page.evaluate(() => {
      document.querySelector('button[value=reject]').value = 'maybe';
    });
    await page.click('button[value=maybe]');
    await dialogOpen(page);
    const response = page.waitForResponse((r) => r.request().method() === 'POST');
    await page.click('#confirm-ok');
    const status = (await response).status();
    check(status >= 400 && status < 500, `invalid: /decide answered ${status}, want 4xx`);
    await result(page);
    await both(page, 'result-invalid');
    const still = await api(req.id);
    check(still.status === 'pending', `invalid: status ${still.status}, want pending`);
    await context.close();
  },

  // Without JavaScript the server asks for confirmation; the comment is carried.
  async nojs() {
    const req = cfg.requests.nojs;
    const { context, page, rec } = await open('nojs', { javaScriptEnabled: false });
    await page.goto(req.pages[0]);
    const comment = 'Carried without JavaScript';
    await page.fill('#comment', comment);
    await page.click('button[value=approve]');
    await page.waitForSelector('input[name=confirmed][value="1"]', { state: 'attached' });
    const h = (await page.textContent('h1')).trim();
    check(h.includes('Approve') && h.includes(cfg.title), `nojs: confirmation heading ${JSON.stringify(h)}`);
    check(await page.inputValue('#comment') === comment, 'nojs: comment not carried to the confirmation page');
    await both(page, 'confirm');
    const pending = await api(req.id);
    check(pending.status === 'pending', `nojs: status before confirming is ${pending.status}, want pending`);
    await page.click('form button[type=submit]');
    const r = await result(page);
    check(/approved/i.test(r), `nojs: result heading ${JSON.stringify(r)}, want Approved`);
    check(rec.posts.length === 2, `nojs: ${rec.posts.length} POSTs, want 2`);
    const done = await api(req.id);
    check(done.status === 'approved' && done.decision && crlf(done.decision.comment) === comment,
      `nojs: recorded ${done.status} with comment ${JSON.stringify(done.decision && done.decision.comment)}`);
    await context.close();
  },

  // The page is opened at once, left open past the request's expiry (one
  // minute), then used: the bot answers that the request expired.
  async expired() {
    const req = cfg.requests.expired;
    const { context, page, rec } = await open('expired');
    await page.goto(req.pages[0]);
    const first = await api(req.id);
    const deadline = Date.parse(first.expiresAt || '') || Date.now() + 61000;
    check(first.status === 'pending', `expired: status at start ${first.status}, want pending`);
    await page.fill('#comment', 'Too late');
    // Wait (polling the bot) until the request is past its expiry.
    let now = first;
    while (Date.now() < deadline + 1000 || now.status === 'pending') {
      if (Date.now() > deadline + 30000) break;
      await new Promise((r) => setTimeout(r, 1000));
      now = await api(req.id);
    }
    check(now.status === 'expired', `expired: status after the timeout ${now.status}, want expired`);
    await page.click('button[value=approve]');
    await dialogOpen(page);
    await page.click('#confirm-ok');
    const h = await result(page);
    check(/expired/i.test(h), `expired: result heading ${JSON.stringify(h)}, want expired`);
    check(rec.posts.length === 1, `expired: ${rec.posts.length} POSTs, want 1`);
    await both(page, 'result-expired');
    await context.close();
  },

  // "quorum:2" of three approvers: the page says the rule in words and shows
  // the progress; the first approval is recorded while the request stays
  // pending and the others' pages stay live; the second approves it; then the
  // third approver's page is gone. The progress display fits a phone and a
  // desktop screen on every page.
  async quorum() {
    const req = cfg.requests.quorum;
    const a = await open('quorum-a');
    await a.page.goto(req.pages[0]);
    check((await a.page.textContent('body')).includes('2 of 3 approvers must approve'), 'quorum: the page does not say the rule in words');
    let p = await progress(a.page, 'page-quorum');
    check(p.text.startsWith('0 of 2 approvals') && p.votes === 0, `quorum: the new page shows ${JSON.stringify(p.text)} with ${p.votes} votes, want 0 of 2 and none`);
    await both(a.page, 'page-quorum');
    const comment = 'First of two: checked the rollout plan';
    await a.page.fill('#comment', comment);
    await a.page.click('button[value=approve]');
    await dialogOpen(a.page);
    const consequence = await a.page.textContent('#confirm-text');
    check(consequence.includes('2 of 3 approvers must approve'), `quorum: the dialog says ${JSON.stringify(consequence)}, want the rule`);
    await a.page.click('#confirm-ok');
    const h = await result(a.page);
    check(/your approval is recorded/i.test(h), `quorum: first vote shows ${JSON.stringify(h)}, want "Your approval is recorded"`);
    const recorded = await a.page.textContent('body');
    check(recorded.includes('1 more approval is needed'), 'quorum: the recorded page does not say how many approvals are still needed');
    check(recorded.includes(comment) && recorded.includes('quorum-alice@example.com'), 'quorum: the recorded page does not list the vote with its voter and comment');
    p = await progress(a.page, 'result-recorded');
    check(p.text.startsWith('1 of 2 approvals') && p.votes === 1, `quorum: after one vote the progress shows ${JSON.stringify(p.text)} with ${p.votes} votes`);
    await both(a.page, 'result-recorded');
    const mid = await api(req.id);
    check(mid.status === 'pending', `quorum: status after one approval ${mid.status}, want pending`);
    check(mid.votes && mid.votes.length === 1 && mid.progress && mid.progress.needed === 1,
      `quorum: after one approval the API shows votes ${JSON.stringify(mid.votes)} and progress ${JSON.stringify(mid.progress)}`);

    const b = await open('quorum-b');
    const live = await b.page.goto(req.pages[1]);
    check(live.status() === 200, `quorum: the second approver's page answers ${live.status()} while pending, want 200`);
    await b.page.click('button[value=approve]');
    await dialogOpen(b.page);
    await b.page.click('#confirm-ok');
    const h2 = await result(b.page);
    check(/approved/i.test(h2), `quorum: second vote shows ${JSON.stringify(h2)}, want Approved`);
    check((await b.page.textContent('body')).includes('Your approval was the last one needed'), 'quorum: the closing vote is not told it completed the rule');
    p = await progress(b.page, 'result-approved-quorum');
    check(p.text.startsWith('2 of 2 approvals') && p.votes === 2, `quorum: after the close the progress shows ${JSON.stringify(p.text)} with ${p.votes} votes`);
    await both(b.page, 'result-approved-quorum');
    const done = await api(req.id);
    check(done.status === 'approved' && done.votes && done.votes.length === 2,
      `quorum: status ${done.status} with ${done.votes && done.votes.length} votes, want approved with 2`);

    // Every page is taken down when the request closes (right after the
    // answer): the third approver's link says what happened.
    const c = await open('quorum-c');
    let status = 0;
    for (let i = 0; i < 50; i++) {
      status = (await c.page.goto(req.pages[2])).status();
      if (status === 410) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    check(status === 410, `quorum: the third approver's page answers ${status} after the close, want 410`);
    check(/this request was approved/i.test(await result(c.page)), 'quorum: the third approver is not told the request was approved');
    for (const x of [a, b, c]) await x.context.close();
  },

  // Result pages the bot cannot be made to show on demand, rendered by the
  // same templates and served by the test.
  async previews() {
    for (const p of cfg.previews || []) {
      const { context, page } = await open(p.name, { origins: [cfg.previewOrigin] });
      await page.goto(p.url);
      await result(page);
      await both(page, p.name);
      if (p.name === 'result-already-voted' || p.name === 'result-self-approval') {
        await progress(page, p.name);
      }
      await context.close();
    }
  },
};

// runScenario runs one scenario with a time limit, turning any exception into a
// failure.
async function runScenario(name, limit) {
  if (name !== 'previews' && !(cfg.requests && cfg.requests[name])) {
    fail(`${name}: no request in the config`);
    return;
  }
  log(`scenario ${name}`);
  let timer;
  const watchdog = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario took longer than ${limit / 1000} s`)), limit);
  });
  try {
    await Promise.race([scenarios[name](), watchdog]);
    log(`scenario ${name} done`);
  } catch (err) {
    fail(`${name}: ${err.stack || err}`);
  } finally {
    clearTimeout(timer);
  }
}

const only = process.env.BROWSERTEST_ONLY ? process.env.BROWSERTEST_ONLY.split(',') : Object.keys(scenarios);
// The expiry scenario mostly waits for its request to expire: it runs alongside
// the others.
const slow = only.includes('expired') ? runScenario('expired', 150000) : Promise.resolve();
for (const name of only.filter((n) => n !== 'expired')) {
  await runScenario(name, 90000);
}
await slow;
await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10000))]);
log(`screenshots (${shots.length}) in ${cfg.screenshots}`);
if (failures.length) {
  log(`${failures.length} failure(s)`);
  process.exit(1);
}
log('all browser scenarios passed');
process.exit(0);
