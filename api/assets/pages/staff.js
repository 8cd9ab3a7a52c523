// The vie scolaire's page (CPE): the roll calls of the day still missing,
// the justifications waiting for review (accept or reject), and the
// students over the absenteeism threshold since the start of the school year.

import { gql, openAttachment } from './api.js';
import {
  h, uid, section, attempt, notice, today, dateTime, time, KINDS,
} from './ui.js';

const MISSING = `query Manquants($establishmentId: ID!, $date: Date!) {
  missingRollCalls(establishmentId: $establishmentId, date: $date) {
    id subject start end schoolClass { name } teacher { displayName }
  }
}`;

const PENDING = `query EnAttente($establishmentId: ID!) {
  pendingJustifications(establishmentId: $establishmentId) {
    id kind start end minutesLate reason motive { label }
    student { person { displayName } schoolClass { name } }
    attachments { id name url }
  }
}`;

const REVIEW = `mutation Examiner($input: ReviewJustificationInput!) { reviewJustification(input: $input) { id state } }`;

/** The first day of the school year that contains `date` (1 September). */
export function schoolYearStart(date) {
  const [year, month] = date.split('-').map(Number);
  return `${month >= 9 ? year : year - 1}-09-01`;
}

/**
 * `absenceStats` of every class over [from, to], a few classes per request
 * (aliases), so that a request stays well within the server's cost budget.
 */
export async function classStats(classes, from, to, fields) {
  const answers = new Map();
  for (let i = 0; i < classes.length; i += 6) {
    const chunk = classes.slice(i, i + 6);
    const query = `query Stats($from: Date!, $to: Date!, ${chunk.map((_, j) => `$c${j}: ID!`).join(', ')}) {
      ${chunk.map((_, j) => `c${j}: absenceStats(classId: $c${j}, from: $from, to: $to) { ${fields} }`).join('\n')}
    }`;
    const variables = { from, to, ...Object.fromEntries(chunk.map((c, j) => [`c${j}`, c.id])) };
    const data = await gql(query, variables);
    chunk.forEach((c, j) => answers.set(c.id, data[`c${j}`]));
  }
  return answers;
}

export function staffView(main, me) {
  const messages = h('div', { class: 'messages', 'aria-live': 'polite' });
  main.append(h('h1', {}, 'Vie scolaire'), messages);
  const establishment = me.establishment;
  if (!establishment) {
    notice(messages, 'Votre compte n’est rattaché à aucun établissement.', 'error');
    return {};
  }
  const missing = h('div', {}, h('p', {}, 'Chargement…'));
  const pending = h('div', {}, h('p', {}, 'Chargement…'));
  const over = h('div', {}, h('p', {}, 'Chargement…'));
  main.append(
    section('Appels non faits aujourd’hui', missing),
    section('Justifications à examiner', pending),
    section('Élèves au-delà du seuil d’absentéisme', over));

  attempt(missing, async () => {
    const data = await gql(MISSING, { establishmentId: establishment.id, date: today() });
    const list = data.missingRollCalls.sort((a, b) => a.start.localeCompare(b.start));
    missing.replaceChildren(list.length === 0 ? h('p', {}, 'Tous les appels de la journée sont faits.')
      : h('ul', { class: 'rows' }, list.map((c) => h('li', {},
        h('strong', {}, `${time(c.start)}–${time(c.end)}`), ` ${c.schoolClass.name} · ${c.subject} · ${c.teacher.displayName}`))));
  });

  attempt(pending, async () => {
    const data = await gql(PENDING, { establishmentId: establishment.id });
    const list = data.pendingJustifications;
    pending.replaceChildren(list.length === 0 ? h('p', {}, 'Aucune justification en attente.')
      : h('ul', { class: 'rows' }, list.map(reviewItem)));
  });

  attempt(over, async () => {
    const { establishment: full } = await gql('query Classes($id: ID!) { establishment(id: $id) { classes { id name } } }', { id: establishment.id });
    const stats = await classStats(full.classes, schoolYearStart(today()), today(),
      'unjustifiedHalfDays studentsOverThreshold { id person { displayName } }');
    const rows = full.classes.flatMap((c) => stats.get(c.id).studentsOverThreshold.map((s) => ({ student: s, className: c.name })));
    over.replaceChildren(
      h('p', { class: 'muted' }, 'Quatre demi-journées ou plus d’absence non justifiée dans un même mois, depuis la rentrée.'),
      rows.length === 0 ? h('p', {}, 'Aucun élève.')
        : h('ul', { class: 'rows' }, rows.map((r) => h('li', {}, h('strong', {}, r.student.person.displayName), ` · ${r.className}`))));
  });

  function reviewItem(absence) {
    const comment = uid('commentaire');
    const box = h('div', { class: 'messages', 'aria-live': 'polite' });
    const name = absence.student.person.displayName;
    const item = h('li', { 'data-absence-id': absence.id });
    const decide = (accept) => attempt(box, async () => {
      await gql(REVIEW, { input: { absenceId: absence.id, accept, comment: item.querySelector('textarea').value || null } });
      item.replaceChildren(h('p', {}, `${name} : justification ${accept ? 'acceptée' : 'refusée'}.`));
    });
    item.append(
      h('p', {}, h('strong', {}, name), ` · ${absence.student.schoolClass.name} — ${KINDS[absence.kind]} du ${dateTime(absence.start)}`),
      h('p', { class: 'muted' }, [absence.motive?.label, absence.reason].filter(Boolean).join(' — ')),
      absence.attachments.map((file) => h('button', { type: 'button', class: 'link', onclick: () => attempt(box, () => openAttachment(file.url)) }, `Voir ${file.name}`)),
      h('label', { for: comment }, `Commentaire pour la famille de ${name} (facultatif)`),
      h('textarea', { id: comment, rows: 1, maxlength: 500 }),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => decide(true) }, 'Accepter'),
        h('button', { type: 'button', class: 'secondary', onclick: () => decide(false) }, 'Refuser')),
      box);
    return item;
  }

  return {};
}
