// The head's page: absence rates per class, month by month since the start
// of the school year, and the ENT audience measure of `usageIndicators`:
// visits by hour of the day (0-23) for each profile, the share outside
// school hours, and visits per service. Pictures are SVG drawn here; each
// has its numbers beside it in a table, for screen readers and for checking.

import { gql } from './api.js';
import {
  h, uid, section, attempt, today, addDays, number,
} from './ui.js';
import { classStats, schoolYearStart } from './staff.js';

const PROFILES = [['STUDENT', 'Élèves'], ['TEACHER', 'Enseignants'], ['GUARDIAN', 'Parents'], ['OTHER', 'Autres']];

const USAGE = `query Usage($id: ID!, $from: Date!, $to: Date!) {
  usageIndicators(establishmentId: $id, from: $from, to: $to) {
    from to visits visitors shareOutsideSchoolHours
    cells { service profile hour visits visitors }
  }
}`;

const MONTHS = new Intl.DateTimeFormat('fr-FR', { month: 'short', year: '2-digit', timeZone: 'UTC' });

export function headView(main, me) {
  const messages = h('div', { class: 'messages', 'aria-live': 'polite' });
  main.append(h('h1', {}, 'Direction'), messages);
  const establishment = me.establishment;
  if (!establishment) {
    messages.append(h('p', { class: 'notice error' }, 'Votre compte n’est rattaché à aucun établissement.'));
    return {};
  }
  const rates = h('div', {}, h('p', {}, 'Chargement…'));
  const usage = h('div', {});
  main.append(section('Fréquentation de l’ENT', usage), section('Taux d’absence par classe', rates));
  usageSection(establishment, usage);
  absenceRates(establishment, rates);
  return {};
}

function usageSection(establishment, container) {
  const ids = { from: uid('du'), to: uid('au'), service: uid('service') };
  const from = h('input', { id: ids.from, type: 'date', value: addDays(today(), -29), name: 'du' });
  const to = h('input', { id: ids.to, type: 'date', value: today(), name: 'au' });
  const service = h('select', { id: ids.service, name: 'service' }, h('option', { value: '' }, 'Tous les services'));
  const errors = h('div', { class: 'messages', 'aria-live': 'polite' });
  const result = h('div', {}, h('p', {}, 'Chargement…'));
  let report = null;

  const form = h('form', { class: 'filters' },
    h('span', { class: 'inline-field' }, h('label', { for: ids.from }, 'Du'), from),
    h('span', { class: 'inline-field' }, h('label', { for: ids.to }, 'au'), to),
    h('button', { type: 'submit' }, 'Actualiser'),
    h('span', { class: 'inline-field' }, h('label', { for: ids.service }, 'Service'), service));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  service.addEventListener('change', () => report && draw());
  container.replaceChildren(form, errors, result);
  load();

  function load() {
    result.setAttribute('aria-busy', 'true');
    attempt(errors, async () => {
      const data = await gql(USAGE, { id: establishment.id, from: from.value, to: to.value });
      report = data.usageIndicators;
      const services = [...new Set(report.cells.map((c) => c.service))].sort();
      const chosen = service.value;
      service.replaceChildren(h('option', { value: '' }, 'Tous les services'),
        services.map((s) => h('option', { value: s, selected: s === chosen }, s)));
      errors.replaceChildren();
      draw();
    }).finally(() => result.removeAttribute('aria-busy'));
  }

  function draw() {
    const cells = report.cells.filter((c) => !service.value || c.service === service.value);
    const perService = new Map();
    for (const c of report.cells) perService.set(c.service, (perService.get(c.service) ?? 0) + c.visits);
    const hours = (profile) => {
      const counts = new Array(24).fill(0);
      for (const c of cells) if (c.profile === profile) counts[c.hour] += c.visits;
      return counts;
    };
    const series = PROFILES.map(([profile, label]) => ({ profile, label, counts: hours(profile) }));
    const top = Math.max(1, ...series.flatMap((s) => s.counts));
    result.replaceChildren(
      h('p', { class: 'figures' },
        h('span', {}, h('strong', { 'data-figure': 'visits' }, report.visits), ' visites'),
        h('span', {}, h('strong', {}, report.visitors), ' visiteurs'),
        h('span', {}, h('strong', { 'data-figure': 'outside' }, `${number(report.shareOutsideSchoolHours * 100, 1)} %`), ' hors temps scolaire')),
      h('p', { class: 'muted' }, 'Temps scolaire : du lundi au vendredi, 8 h – 18 h, hors vacances. Une visite : les lectures d’une personne dans un service en 30 minutes.'),
      h('div', { class: 'charts' }, series.map((s) => hourChart(s, top))),
      h('table', {},
        h('caption', {}, 'Visites par service'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Service'), h('th', { scope: 'col' }, 'Visites'))),
        h('tbody', {}, [...perService].sort((a, b) => b[1] - a[1]).map(([name, visits]) => h('tr', {},
          h('th', { scope: 'row' }, name), h('td', { 'data-service': name }, visits))))));
  }
}

/** One bar per hour 0-23, heights on a scale shared by the four profiles. */
function hourChart({ profile, label, counts }, top) {
  const width = 24 * 12;
  const height = 110;
  const plot = 90;
  const titleId = uid('graphique');
  const total = counts.reduce((a, b) => a + b, 0);
  const svg = h('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': titleId, 'data-profile': profile, class: 'chart',
  },
  h('title', { id: titleId }, `${label} : ${total} visites, réparties par heure de la journée`),
  h('line', { x1: 0, y1: plot, x2: width, y2: plot, class: 'axis' }),
  counts.map((visits, hour) => {
    const bar = visits === 0 ? 0 : Math.max(1, Math.round((visits / top) * (plot - 4)));
    return h('rect', {
      x: hour * 12 + 1, y: plot - bar, width: 10, height: bar, class: hour >= 8 && hour < 18 ? 'bar' : 'bar outside', 'data-hour': hour, 'data-visits': visits,
    }, h('title', {}, `${hour} h : ${visits} visite${visits > 1 ? 's' : ''}`));
  }),
  [0, 6, 12, 18, 23].map((hour) => h('text', { x: hour * 12 + 6, y: height - 4, 'text-anchor': 'middle', class: 'tick' }, `${hour}h`)));
  return h('figure', {},
    h('figcaption', {}, h('strong', {}, label), ` — ${total} visites`),
    svg,
    h('details', {}, h('summary', {}, `Les chiffres (${label.toLowerCase()})`),
      h('table', { class: 'compact' },
        h('caption', { class: 'sr-only' }, `Visites par heure, ${label.toLowerCase()}`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Heure'), h('th', { scope: 'col' }, 'Visites'))),
        h('tbody', {}, counts.map((v, hour) => h('tr', {}, h('th', { scope: 'row' }, `${hour} h`), h('td', {}, v)))))));
}

function nextMonth(date) {
  const [year, month] = date.split('-').map(Number);
  return month === 12 ? `${year + 1}-01-01` : `${year}-${String(month + 1).padStart(2, '0')}-01`;
}

/** Half-days of class in [from, to]: Monday to Friday outside holidays, Wednesday morning only. */
function schoolHalfDays(from, to, holidays) {
  let count = 0;
  for (let d = from; d <= to; d = addDays(d, 1)) {
    const weekday = new Date(`${d}T12:00:00Z`).getUTCDay();
    if (weekday === 0 || weekday === 6) continue;
    if (holidays.some((r) => r.from <= d && d <= r.to)) continue;
    count += weekday === 3 ? 1 : 2;
  }
  return count;
}

function absenceRates(establishment, container) {
  attempt(container, async () => {
    const { establishment: full } = await gql(`query Classes($id: ID!) {
      establishment(id: $id) { holidays { from to } classes { id name students { id } } }
    }`, { id: establishment.id });
    const end = today();
    const months = [];
    for (let start = schoolYearStart(end); start <= end; start = nextMonth(start)) {
      const last = addDays(nextMonth(start), -1);
      months.push({ from: start, to: last < end ? last : end });
    }
    const stats = await Promise.all(months.map((m) => classStats(full.classes, m.from, m.to, 'halfDaysMissed')));
    const rate = (c, i) => {
      const possible = c.students.length * schoolHalfDays(months[i].from, months[i].to, full.holidays);
      return possible === 0 ? null : stats[i].get(c.id).halfDaysMissed / possible;
    };
    const captionId = uid('taux');
    const top = Math.max(0.01, ...full.classes.flatMap((c) => months.map((_, i) => rate(c, i) ?? 0)));
    container.replaceChildren(
      h('p', { class: 'muted' }, 'Demi-journées manquées rapportées aux demi-journées de classe (lundi – vendredi hors vacances, mercredi matin) de chaque élève inscrit.'),
      // Scrolls sideways on a phone: focusable, so a keyboard can scroll it too.
      h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-labelledby': captionId }, h('table', { class: 'rates' },
        h('caption', { id: captionId }, 'Taux d’absence par classe et par mois'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Classe'), months.map((m) => h('th', { scope: 'col' }, MONTHS.format(new Date(`${m.from}T12:00:00Z`)))))),
        h('tbody', {}, full.classes.map((c) => h('tr', {},
          h('th', { scope: 'row' }, c.name),
          months.map((_, i) => {
            const value = rate(c, i);
            return h('td', {}, value === null ? '—' : [
              h('svg', { viewBox: '0 0 40 8', class: 'spark', 'aria-hidden': 'true', focusable: 'false' },
                h('rect', { x: 0, y: 0, width: Math.max(0.5, (value / top) * 40), height: 8, class: 'bar' })),
              ` ${number(value * 100, 1)} %`]);
          })))))));
  });
}
