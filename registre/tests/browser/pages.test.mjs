// Drives Debian's Chromium through Registre's pages (issue 18). Started by
// registre/tests/pages_browser.rs, which serves the demo collège and passes,
// in the environment, the node's URL, tokens and the ids to use:
//   REGISTRE_URL, ESTABLISHMENT_ID, TOKEN_GUARDIAN, TOKEN_TEACHER, TOKEN_STAFF, TOKEN_HEAD,
//   TOKEN_REPORTER (a teacher of CHILD_ID's class), CHILD_ID,
//   ROLL_COURSE_ID and ROLL_DATE (a course of TOKEN_TEACHER's),
//   REGISTRE_SCREENSHOTS (optional: a directory for the screenshots).
// Prints one JSON report as its last line; exits 1 when a check failed.

import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const env = process.env;
const base = env.REGISTRE_URL;
const shots = env.REGISTRE_SCREENSHOTS || null;
const report = { failures: [], pages: {}, axe: {}, csp: [] };
// While the test cuts the network on purpose, the browser's own log of the
// failed request is expected.
let offline = false;

function check(condition, message) {
  if (!condition) report.failures.push(message);
  return condition;
}

async function graphql(token, query, variables = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`${query.slice(0, 60)}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const profile = mkdtempSync(join(tmpdir(), 'registre-chromium-'));
// A persistent context on a new, empty profile directory: nothing from
// another run (cache, storage) can make a page look faster or work by chance.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env.REGISTRE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--lang=fr-FR', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  locale: 'fr-FR',
  timezoneId: 'Europe/Paris',
});

async function open(name, token, viewLink) {
  const page = await context.newPage();
  page.on('console', (message) => {
    const text = message.text();
    if (offline && /ERR_INTERNET_DISCONNECTED/.test(text)) return;
    if (/Content Security Policy|Refused to/i.test(text)) report.csp.push(`${name}: ${text}`);
    else if (message.type() === 'error') report.failures.push(`${name}: console error: ${text}`);
  });
  page.on('pageerror', (error) => report.failures.push(`${name}: page error: ${error.message}`));
  // Bytes on the wire (compressed bodies and headers): the page's files,
  // and its GraphQL answers apart.
  const sizes = { assetBytes: 0, dataBytes: 0, requests: 0, largest: [] };
  page.on('requestfinished', async (request) => {
    try {
      const { responseBodySize, responseHeadersSize } = await request.sizes();
      const bytes = responseBodySize + responseHeadersSize;
      if (new URL(request.url()).pathname === '/graphql') {
        sizes.dataBytes += bytes;
        let query = '';
        try {
          query = request.postDataJSON()?.query ?? '';
        } catch { /* a multipart upload */ }
        const operation = /^\s*(?:query|mutation)\s+(\w+)/.exec(query)?.[1] ?? 'anonymous';
        if (bytes > 10_000) sizes.largest.push(`${operation}: ${bytes}`);
      } else {
        sizes.assetBytes += bytes;
      }
      sizes.requests += 1;
    } catch { /* the page went on */ }
  });
  const started = Date.now();
  const response = await page.goto(`${base}/#token=${token}`);
  const headers = await response.allHeaders();
  check(headers['content-security-policy']?.startsWith("default-src 'none'"), `${name}: the page has no strict Content-Security-Policy`);
  check(headers['content-encoding'] === 'gzip', `${name}: the page was not sent gzipped`);
  if (viewLink) {
    const link = page.getByRole('link', { name: viewLink });
    await link.click();
  }
  return { page, started, measure: () => ({ ...sizes }) };
}

async function interactive(name, handle, selector) {
  await handle.page.waitForSelector(selector, { timeout: 15_000 });
  // Every section loaded: no "Chargement…" left.
  await handle.page.waitForFunction(() => !document.body.innerText.includes('Chargement'), null, { timeout: 15_000 });
  const ms = Date.now() - handle.started;
  await handle.page.waitForLoadState('networkidle').catch(() => {});
  report.pages[name] = { interactiveMs: ms, ...handle.measure() };
}

async function axe(name, page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  report.axe[name] = result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  check(result.violations.length === 0, `${name}: axe-core found ${result.violations.length} violation(s) of WCAG A/AA`);
}

async function screenshot(name, page) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  // The first screens of a phone, at CSS pixels: what the README shows.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.setViewportSize({ width: 390, height: 1500 });
  await page.screenshot({ path: join(shots, `${name}.png`), scale: 'css' });
  await page.setViewportSize({ width: 390, height: 844 });
}

function minimalPdf() {
  return Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');
}

async function reportAbsence(minutesAgo) {
  const end = new Date(Date.now() - minutesAgo * 60_000);
  const start = new Date(end.getTime() - 55 * 60_000);
  const data = await graphql(env.TOKEN_REPORTER, `mutation ($input: ReportAbsenceInput!) { reportAbsence(input: $input) { id start } }`, {
    input: { studentId: env.CHILD_ID, kind: 'ABSENCE', start: start.toISOString(), end: end.toISOString(), idempotencyKey: crypto.randomUUID() },
  });
  // A report overlapping a guardian's declaration confirms it instead of
  // recording a new one: nothing new would then have to arrive live.
  check(Date.parse(data.reportAbsence.start) === Math.floor(start.getTime() / 1000) * 1000 || Date.parse(data.reportAbsence.start) === start.getTime(),
    `the reported absence is a new one (start ${data.reportAbsence.start}, sent ${start.toISOString()})`);
  return data.reportAbsence.id;
}

async function parent() {
  const handle = await open('parent', env.TOKEN_GUARDIAN);
  const { page } = handle;
  await interactive('parent', handle, `[data-absences="${env.CHILD_ID}"]`);
  check(await page.evaluate(() => location.hash === ''), 'parent: the token left the address bar');
  check(await page.evaluate(() => sessionStorage.getItem('registre.token')?.length > 20), 'parent: the token is kept in sessionStorage');
  await page.waitForSelector('html[data-live="live"]', { timeout: 10_000 });

  // A teacher reports an absence: it appears without reload within 2 s.
  const first = await reportAbsence(60);
  const reported = Date.now();
  const shown = await page.waitForSelector(`li[data-absence-id="${first}"]`, { timeout: 2_000 }).then(() => true, () => false);
  report.live = { shownWithinMs: shown ? Date.now() - reported : null };
  check(shown, 'parent: the absence reported by a teacher was not shown within 2 s');

  // The connection drops; an absence reported meanwhile arrives once the
  // subscription resumes with `after`.
  await page.evaluate(() => document.dispatchEvent(new Event('registre-drop-live')));
  await page.waitForSelector('html[data-live="lost"]', { timeout: 2_000 });
  const second = await reportAbsence(240);
  const stateWhenReported = await page.evaluate(() => document.documentElement.dataset.live);
  const resumed = await page.waitForSelector(`li[data-absence-id="${second}"]`, { timeout: 10_000 }).then(() => true, () => false);
  report.live.reportedWhile = stateWhenReported;
  report.live.resumed = resumed;
  check(resumed, 'parent: the absence reported while disconnected did not arrive after the subscription resumed');
  const copies = await page.locator(`li[data-absence-id="${first}"]`).count();
  check(copies === 1, `parent: the first absence is listed ${copies} times after the resume`);

  // Justify it with a motive and a document (multipart upload).
  const item = page.locator(`li[data-absence-id="${second}"]`);
  await item.locator('summary', { hasText: 'Justifier' }).click();
  await item.getByLabel('Motif').selectOption({ index: 1 });
  await item.getByLabel('Explication').fill('Rendez-vous chez le médecin.');
  await item.getByLabel(/Justificatif/).setInputFiles({ name: 'certificat.pdf', mimeType: 'application/pdf', buffer: minimalPdf() });
  await item.getByRole('button', { name: 'Envoyer la justification' }).click();
  const pending = await page.waitForSelector(`li[data-absence-id="${second}"] .badge.pending`, { timeout: 5_000 }).then(() => true, () => false);
  check(pending, 'parent: the justification was not recorded');
  report.justified = pending ? second : null;
  await page.evaluate(() => window.scrollTo(0, 0));
  await axe('parent', page);
  await screenshot('parent', page);
  await page.close();
}

async function teacher() {
  const handle = await open('teacher', env.TOKEN_TEACHER, 'Enseignement');
  const { page } = handle;
  await interactive('teacher', handle, 'input[name="jour"]');
  await page.fill('input[name="jour"]', env.ROLL_DATE);
  await page.dispatchEvent('input[name="jour"]', 'change');
  const course = page.locator(`li[data-course-id="${env.ROLL_COURSE_ID}"]`);
  await course.waitFor({ timeout: 5_000 });
  await course.getByRole('button', { name: /appel/ }).click();
  const form = course.locator('form.roll');
  await form.waitFor({ timeout: 5_000 });
  const students = await form.locator('fieldset[data-student-id]').evaluateAll((nodes) => nodes.map((n) => n.dataset.studentId));
  check(students.length >= 4, `teacher: the roll call lists ${students.length} students`);
  // Everyone present first (an earlier call may have marked some), then tap.
  for (const id of students) {
    await form.locator(`fieldset[data-student-id="${id}"]`).getByText('Présent', { exact: true }).tap();
  }
  const absent = [students[1], students[3]];
  const late = [students[2]];
  for (const id of absent) await form.locator(`fieldset[data-student-id="${id}"]`).getByText('Absent', { exact: true }).tap();
  const lateRow = form.locator(`fieldset[data-student-id="${late[0]}"]`);
  await lateRow.getByText('En retard', { exact: true }).tap();
  await lateRow.getByLabel('Minutes de retard').fill('12');
  await form.getByRole('button', { name: 'Enregistrer l’appel' }).tap();
  const saved = await page.waitForSelector('form.roll[data-saved="true"]', { timeout: 5_000 }).then(() => true, () => false);
  check(saved, 'teacher: the roll call was not saved');
  report.rollCall = { courseId: env.ROLL_COURSE_ID, absent, late, lateMinutes: 12 };

  // The grades grid: a new assessment of the first class and subject,
  // three rows entered, saved in one request.
  await page.getByLabel('Classe et matière').selectOption({ index: 1 });
  const book = await page.inputValue('select[name="carnet"]');
  await page.waitForFunction(() => document.querySelector('table.grid') || document.body.innerText.includes('Aucune évaluation'), null, { timeout: 5_000 });
  await page.locator('summary', { hasText: 'Nouvelle évaluation' }).click();
  await page.getByLabel('Intitulé').fill('Contrôle du navigateur');
  await page.getByRole('button', { name: 'Créer l’évaluation' }).click();
  await page.waitForFunction(() => document.querySelector('select[name="evaluation"] option:checked')?.textContent.startsWith('Contrôle du navigateur'), null, { timeout: 5_000 });
  const rows = await page.locator('table.grid tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.studentId));
  const entered = { [rows[0]]: 14.5, [rows[1]]: 9 };
  await page.locator(`input[data-score="${rows[0]}"]`).fill('14.5');
  await page.locator(`input[data-score="${rows[1]}"]`).fill('9');
  await page.locator(`select[data-status="${rows[2]}"]`).selectOption('ABSENT');
  await page.getByRole('button', { name: 'Enregistrer les notes saisies' }).click();
  await page.waitForFunction((id) => document.querySelector(`tr[data-student-id="${id}"]`)?.textContent.includes('enregistrée'), rows[0], { timeout: 5_000 });
  report.grades = {
    classId: book.split('|')[0], subject: book.split('|')[1], title: 'Contrôle du navigateur', scores: entered, absent: [rows[2]],
  };
  await page.evaluate(() => window.scrollTo(0, 0));
  await axe('teacher', page);
  await screenshot('teacher', page);
  await page.close();
}

async function staff() {
  const handle = await open('staff', env.TOKEN_STAFF, 'Vie scolaire');
  const { page } = handle;
  await interactive('staff', handle, 'h1');
  if (report.justified) {
    const item = page.locator(`li[data-absence-id="${report.justified}"]`);
    const listed = await item.waitFor({ timeout: 5_000 }).then(() => true, () => false);
    check(listed, 'staff: the parent’s justification is not among those to review');
    if (listed) {
      await item.getByRole('button', { name: 'Accepter' }).click();
      const done = await page.waitForSelector('text=justification acceptée', { timeout: 5_000 }).then(() => true, () => false);
      check(done, 'staff: accepting the justification failed');
    }
  }
  await axe('staff', page);
  await screenshot('vie-scolaire', page);
  await page.close();
}

async function usageFromApi(from, to) {
  const data = await graphql(env.TOKEN_HEAD, `query ($id: ID!, $from: Date!, $to: Date!) {
    usageIndicators(establishmentId: $id, from: $from, to: $to) { visits shareOutsideSchoolHours cells { service profile hour visits } } }`,
  { id: env.ESTABLISHMENT_ID, from, to });
  return data.usageIndicators;
}

async function head() {
  const handle = await open('head', env.TOKEN_HEAD, 'Direction');
  const { page } = handle;
  await interactive('head', handle, 'svg.chart');
  const from = await page.inputValue('input[name="du"]');
  const to = await page.inputValue('input[name="au"]');
  // The page's own reads are visits too: compare once the API gives the
  // same answer before and after the page's, within a deadline.
  const deadline = Date.now() + 20_000;
  let matched = false;
  let last = null;
  while (!matched && Date.now() < deadline) {
    const before = await usageFromApi(from, to);
    await page.getByRole('button', { name: 'Actualiser' }).click();
    await page.waitForFunction(() => !document.querySelector('[aria-busy]'), null, { timeout: 5_000 });
    const bars = await page.locator('svg.chart').evaluateAll((charts) => Object.fromEntries(charts.map((c) => [
      c.dataset.profile, [...c.querySelectorAll('rect[data-hour]')].map((r) => [Number(r.dataset.hour), Number(r.dataset.visits)])])));
    const after = await usageFromApi(from, to);
    if (JSON.stringify(before) !== JSON.stringify(after)) continue;
    const expected = {};
    for (const p of ['STUDENT', 'TEACHER', 'GUARDIAN', 'OTHER']) {
      expected[p] = Array.from({ length: 24 }, (_, hour) => [hour, after.cells.filter((c) => c.profile === p && c.hour === hour).reduce((s, c) => s + c.visits, 0)]);
    }
    last = { visits: after.visits, bars, expected };
    matched = JSON.stringify(bars) === JSON.stringify(expected);
    if (!matched) break;
  }
  report.usage = {
    matched,
    profiles: last ? Object.keys(last.bars).length : 0,
    barsPerProfile: last ? Object.values(last.bars).map((b) => b.length) : [],
    visits: last?.visits ?? null,
  };
  check(matched, `head: the chart's bars differ from usageIndicators: ${JSON.stringify(last)}`);
  check(last && Object.values(last.bars).every((b) => b.length === 24), 'head: a chart does not have one bar per hour');
  await page.waitForSelector('table.rates', { timeout: 15_000 });
  await axe('head', page);
  await screenshot('direction', page);
  // The network goes down: the page says so in words.
  offline = true;
  await context.setOffline(true);
  await page.getByRole('button', { name: 'Actualiser' }).click();
  const said = await page.waitForSelector('text=Impossible de joindre le serveur', { timeout: 5_000 }).then(() => true, () => false);
  await context.setOffline(false);
  offline = false;
  check(said, 'head: a request without network does not say the server cannot be reached');
  await page.close();
}

async function expired() {
  const page = await context.newPage();
  await page.goto(`${base}/#token=not-a-token`);
  const shown = await page.waitForSelector('text=Votre session a expiré', { timeout: 5_000 }).then(() => true, () => false);
  check(shown, 'sign-in: an invalid token does not say the session expired');
  await axe('sign-in', page);
  await screenshot('connexion', page);
  await page.close();
}

try {
  for (const [name, run] of [['parent', parent], ['teacher', teacher], ['staff', staff], ['head', head], ['sign-in', expired]]) {
    try {
      await run();
    } catch (error) {
      report.failures.push(`${name}: ${error.stack ?? error}`);
    }
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
check(report.csp.length === 0, 'a Content-Security-Policy violation was reported');
console.log(JSON.stringify(report));
process.exit(report.failures.length === 0 ? 0 : 1);
