// The parent's page: each child's averages, grades, absences (justify one,
// with a motive and a document), homework of the coming days, and messages.
// New absences arrive live from `absenceReported`; after a lost connection
// the subscription resumes with `after` = the last position seen, so none
// is missed and none is shown twice.

import { gql, subscribe, upload, openAttachment } from './api.js';
import {
  h, uid, section, subsection, attempt, notice, today, addDays, day, dateTime, number, STATES, KINDS, explain, idempotencyKey,
} from './ui.js';

const ABSENCE = `id kind start end minutesLate state reason motive { label } student { id }
  attachments { id name url }`;

const CHILDREN = `query Enfants($from: Date!, $to: Date!) {
  myChildren {
    id
    person { displayName }
    schoolClass { name establishment { absenceReasons { id label usableByGuardians } } }
    averages { subject average classAverage }
    overallAverage
    grades { id score status assessment { subject title date outOf coefficient } }
    absences { ${ABSENCE} }
    homework(from: $from, to: $to) { id subject title description due estimatedMinutes }
  }
  inbox(first: 30) { id subject body sentAt readAt from { displayName } attachments { id name url } }
}`;

const LIVE = `subscription Absences($after: String) {
  absenceReported(after: $after) { position absence { ${ABSENCE} } }
}`;

const JUSTIFY = `mutation Justifier($input: JustifyAbsenceInput!) { justifyAbsence(input: $input) { ${ABSENCE} } }`;

const GRADE_STATUS = { ABSENT: 'Absent', EXEMPT: 'Dispensé', NOT_SUBMITTED: 'Non rendu' };

export function parentView(main) {
  const messages = h('div', { class: 'messages', 'aria-live': 'polite' });
  const live = h('p', { class: 'live muted', role: 'status' }, 'Absences en direct : connexion…');
  const body = h('div', {}, h('p', { class: 'notice' }, 'Chargement…'));
  main.append(h('h1', {}, 'Mes enfants'), live, messages, body);

  const absenceLists = new Map(); // child id -> { absences: Map, render() }
  let lastPosition = null;
  let subscription = null;
  let pending = [];

  function receive(absence) {
    const list = absenceLists.get(absence.student.id);
    if (!list) return;
    const known = list.absences.has(absence.id);
    list.absences.set(absence.id, absence);
    list.render();
    if (!known) {
      notice(messages, `Nouvelle ${KINDS[absence.kind].toLowerCase()} signalée pour ${list.name} : ${dateTime(absence.start)}.`);
    }
  }

  // Subscribed before the first query, so that nothing reported in between
  // is missed; what arrives before the lists exist waits in `pending`.
  subscription = subscribe(LIVE, () => ({ after: lastPosition }), {
    onData(data) {
      const { position, absence } = data.absenceReported;
      lastPosition = position;
      if (absenceLists.size === 0) pending.push(absence);
      else receive(absence);
    },
    onState(state, error) {
      document.documentElement.dataset.live = state;
      live.textContent = state === 'live' ? 'Absences en direct : connecté.'
        : state === 'lost' ? 'Absences en direct : connexion perdue, reprise en cours…'
          : `Absences en direct : arrêté. ${explain(error)}`;
    },
  });

  attempt(messages, async () => {
    const data = await gql(CHILDREN, { from: today(), to: today(14) });
    body.replaceChildren(
      ...data.myChildren.map((child) => childSection(child)),
      inbox(data.inbox),
    );
    if (data.myChildren.length === 0) body.prepend(h('p', { class: 'notice' }, 'Aucun enfant n’est rattaché à votre compte.'));
    for (const absence of pending) receive(absence);
    pending = [];
  });

  function childSection(child) {
    const name = child.person.displayName;
    const motives = child.schoolClass.establishment.absenceReasons.filter((m) => m.usableByGuardians);
    const absencesBox = h('div', {});
    const entry = {
      name,
      absences: new Map(child.absences.map((a) => [a.id, a])),
      render() {
        const sorted = [...this.absences.values()].sort((a, b) => b.start.localeCompare(a.start));
        absencesBox.replaceChildren(sorted.length === 0
          ? h('p', {}, 'Aucune absence ni retard.')
          : h('ul', { class: 'rows', 'data-absences': child.id }, sorted.map((a) => absenceItem(a, motives, this))));
      },
    };
    absenceLists.set(child.id, entry);
    entry.render();
    const titleId = uid('enfant');
    return h('section', { class: 'child', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, name, h('span', { class: 'muted' }, ` · ${child.schoolClass.name}`)),
      averages(child),
      grades(child.grades),
      h('section', { class: 'card', 'aria-labelledby': `${titleId}-abs` }, h('h3', { id: `${titleId}-abs` }, 'Absences et retards'), absencesBox),
      homework(child.homework));
  }

  function absenceItem(absence, motives, entry) {
    const what = absence.kind === 'LATENESS' && absence.minutesLate
      ? `Retard de ${absence.minutesLate} min` : KINDS[absence.kind];
    const item = h('li', { 'data-absence-id': absence.id },
      h('p', {}, h('strong', {}, what), ` — ${dateTime(absence.start)}`,
        ' ', h('span', { class: `badge ${absence.state.toLowerCase()}` }, STATES[absence.state])),
      absence.motive || absence.reason
        ? h('p', { class: 'muted' }, [absence.motive?.label, absence.reason].filter(Boolean).join(' — ')) : null,
      absence.attachments.length
        ? h('p', {}, absence.attachments.map((file) => h('button', {
          type: 'button', class: 'link', onclick: () => attempt(messagesBox(item), () => openAttachment(file.url)),
        }, `Voir ${file.name}`))) : null);
    if (absence.state === 'UNJUSTIFIED' || absence.state === 'REJECTED') {
      item.append(justifyForm(absence, motives, entry));
    }
    return item;
  }

  function messagesBox(item) {
    let box = item.querySelector('.messages');
    if (!box) {
      box = h('div', { class: 'messages', 'aria-live': 'polite' });
      item.append(box);
    }
    return box;
  }

  function justifyForm(absence, motives, entry) {
    const motive = uid('motif');
    const reason = uid('raison');
    const file = uid('piece');
    const errors = h('div', { class: 'messages', 'aria-live': 'polite' });
    const form = h('form', { class: 'justify' },
      h('label', { for: motive }, 'Motif'),
      h('select', { id: motive, name: 'motif' },
        h('option', { value: '' }, '— Choisir un motif —'),
        motives.map((m) => h('option', { value: m.id }, m.label))),
      h('label', { for: reason }, 'Explication'),
      h('textarea', { id: reason, name: 'raison', rows: 2, required: true, maxlength: 500 }),
      h('label', { for: file }, 'Justificatif (PDF ou photo, facultatif)'),
      h('input', { id: file, name: 'piece', type: 'file', accept: 'application/pdf,image/jpeg,image/png' }),
      h('button', { type: 'submit' }, 'Envoyer la justification'),
      errors);
    const details = h('details', {}, h('summary', {}, 'Justifier'), form);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      attempt(errors, async () => {
        const proof = form.elements.piece.files[0];
        const attachmentIds = proof ? [await upload(proof)] : [];
        const data = await gql(JUSTIFY, {
          input: {
            absenceId: absence.id,
            reason: form.elements.raison.value,
            motiveId: form.elements.motif.value || null,
            attachmentIds,
          },
        });
        entry.absences.set(absence.id, data.justifyAbsence);
        entry.render();
        notice(messages, 'Justification envoyée : la vie scolaire va l’examiner.');
      }).finally(() => {
        button.disabled = false;
      });
    });
    return details;
  }

  // The browser tests drop the live connection as a network would, to see
  // the subscription resume with `after`.
  const drop = () => subscription?.drop();
  document.addEventListener('registre-drop-live', drop);
  return {
    close() {
      document.removeEventListener('registre-drop-live', drop);
      subscription?.close();
    },
  };
}

function averages(child) {
  const rows = child.averages.map((a) => h('tr', {},
    h('th', { scope: 'row' }, a.subject), h('td', {}, number(a.average)), h('td', {}, number(a.classAverage))));
  return subsection('Moyennes',
    h('p', {}, 'Moyenne générale : ', h('strong', {}, number(child.overallAverage)), ' / 20'),
    rows.length ? h('table', {},
      h('caption', { class: 'sr-only' }, 'Moyennes par matière, sur 20'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Matière'), h('th', { scope: 'col' }, 'Élève'), h('th', { scope: 'col' }, 'Classe'))),
      h('tbody', {}, rows)) : h('p', {}, 'Pas encore de note.'));
}

function grades(list) {
  const sorted = [...list].sort((a, b) => b.assessment.date.localeCompare(a.assessment.date));
  return h('section', { class: 'card' },
    h('details', {},
      h('summary', {}, h('h3', { class: 'inline' }, `Notes (${sorted.length})`)),
      h('table', {},
        h('caption', { class: 'sr-only' }, 'Notes, les plus récentes d’abord'),
        h('thead', {}, h('tr', {}, ['Date', 'Matière', 'Évaluation', 'Note'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, sorted.map((g) => h('tr', {},
          h('td', {}, g.assessment.date.split('-').reverse().join('/')),
          h('td', {}, g.assessment.subject),
          h('td', {}, g.assessment.title),
          h('td', {}, g.status === 'GRADED' ? `${number(g.score)} / ${number(g.assessment.outOf, 0)}` : GRADE_STATUS[g.status])))))));
}

function homework(list) {
  const byDay = new Map();
  for (const work of [...list].sort((a, b) => a.due.localeCompare(b.due))) {
    if (!byDay.has(work.due)) byDay.set(work.due, []);
    byDay.get(work.due).push(work);
  }
  return subsection('Devoirs des prochains jours',
    byDay.size === 0 ? h('p', {}, 'Aucun devoir pour les deux semaines à venir.')
      : [...byDay].map(([due, works]) => h('div', {},
        h('h4', {}, `Pour ${day(due)}`),
        h('ul', { class: 'rows' }, works.map((w) => h('li', {},
          h('p', {}, h('strong', {}, w.subject), ` — ${w.title}`, w.estimatedMinutes ? h('span', { class: 'muted' }, ` (${w.estimatedMinutes} min)`) : null),
          w.description ? h('p', { class: 'muted' }, w.description) : null))))));
}

function inbox(list) {
  const read = `mutation Lu($id: ID!) { markMessageRead(messageId: $id) { id readAt } }`;
  return section('Messages',
    list.length === 0 ? h('p', {}, 'Aucun message.')
      : h('ul', { class: 'rows' }, list.map((m) => {
        const box = h('div', { class: 'messages', 'aria-live': 'polite' });
        const details = h('details', {},
          h('summary', {}, m.readAt ? null : h('span', { class: 'badge pending' }, 'Non lu'), ' ', h('strong', {}, m.subject),
            h('span', { class: 'muted' }, ` — ${m.from.displayName}, ${dateTime(m.sentAt)}`)),
          h('p', { class: 'body' }, m.body),
          m.attachments.map((file) => h('button', { type: 'button', class: 'link', onclick: () => attempt(box, () => openAttachment(file.url)) }, `Pièce jointe : ${file.name}`)),
          box);
        details.addEventListener('toggle', () => {
          if (details.open && !m.readAt) {
            m.readAt = 'now';
            attempt(box, () => gql(read, { id: m.id })).then(() => details.querySelector('.badge')?.remove());
          }
        });
        return h('li', {}, details);
      })));
}
