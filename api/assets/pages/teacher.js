// The teacher's page: the courses of a day (today by default), a course's
// roll call as the class's students to mark absent or late, sent as ONE
// `takeRollCall`, and an assessment's grades entered in a grid.

import { gql } from './api.js';
import {
  h, uid, section, attempt, notice, today, addDays, day, time, number, idempotencyKey,
} from './ui.js';

const COURSES = `query Cours($from: Date!, $to: Date!) {
  myCourses(from: $from, to: $to) {
    id subject start end room cancelled
    schoolClass { id name }
    rollCall { takenAt presentCount absent { student { id } } late { minutesLate student { id } } }
  }
}`;

const ROLL = `query Appel($id: ID!) {
  course(id: $id) {
    id
    schoolClass { students { id person { displayName } } }
    rollCall { absent { student { id } } late { minutesLate student { id } } }
  }
}`;

const TAKE = `mutation FaireAppel($input: TakeRollCallInput!) {
  takeRollCall(input: $input) { takenAt presentCount absent { student { id } } late { minutesLate student { id } } }
}`;

const GRADEBOOK = `query Carnet($classId: ID!, $subject: String!) {
  schoolClass(id: $classId) {
    id name
    students { id person { displayName } }
    gradebook(subject: $subject) { id title date outOf coefficient grades { id score status student { id } } }
  }
}`;

const STATUS = [['GRADED', 'Noté'], ['ABSENT', 'Absent'], ['EXEMPT', 'Dispensé'], ['NOT_SUBMITTED', 'Non rendu']];

const byName = (a, b) => a.person.displayName.localeCompare(b.person.displayName, 'fr');

export function teacherView(main) {
  const messages = h('div', { class: 'messages', 'aria-live': 'polite' });
  const dayField = uid('jour');
  const picker = h('input', { id: dayField, type: 'date', value: today(), name: 'jour' });
  const courses = h('div', {});
  const grades = h('div', {});
  main.append(h('h1', {}, 'Enseignement'), messages,
    section('Mes cours',
      h('div', { class: 'inline-field' }, h('label', { for: dayField }, 'Jour'), picker),
      courses),
    grades);
  picker.addEventListener('change', () => loadDay());
  loadDay();
  loadGradebooks();

  function loadDay() {
    const date = picker.value || today();
    courses.replaceChildren(h('p', {}, 'Chargement…'));
    attempt(messages, async () => {
      const data = await gql(COURSES, { from: date, to: date });
      const list = data.myCourses.sort((a, b) => a.start.localeCompare(b.start));
      courses.replaceChildren(list.length === 0
        ? h('p', {}, `Aucun cours ${date === today() ? 'aujourd’hui' : `le ${day(date)}`}.`)
        : h('ul', { class: 'rows' }, list.map(courseItem)));
    });
  }

  function courseItem(course) {
    const box = h('div', {});
    const summary = h('p', { class: 'muted' }, rollSummary(course.rollCall));
    const button = h('button', {
      type: 'button',
      'aria-expanded': 'false',
      onclick: () => {
        const open = button.getAttribute('aria-expanded') === 'true';
        button.setAttribute('aria-expanded', String(!open));
        if (open) box.replaceChildren();
        else rollCall(course, box, summary);
      },
    }, course.rollCall ? 'Corriger l’appel' : 'Faire l’appel');
    return h('li', { 'data-course-id': course.id },
      h('p', {}, h('strong', {}, `${time(course.start)}–${time(course.end)}`), ` ${course.subject} · ${course.schoolClass.name}`,
        course.room ? h('span', { class: 'muted' }, ` · ${course.room}`) : null),
      course.cancelled ? h('p', { class: 'badge rejected' }, 'Cours annulé') : h('div', {}, summary, button, box));
  }

  function rollCall(course, box, summary) {
    box.replaceChildren(h('p', {}, 'Chargement de la classe…'));
    attempt(box, async () => {
      const { course: full } = await gql(ROLL, { id: course.id });
      const absent = new Set(full.rollCall?.absent.map((a) => a.student.id) ?? []);
      const late = new Map(full.rollCall?.late.map((a) => [a.student.id, a.minutesLate]) ?? []);
      const errors = h('div', { class: 'messages', 'aria-live': 'polite' });
      const students = [...full.schoolClass.students].sort(byName);
      const form = h('form', { class: 'roll', 'aria-label': `Appel du cours de ${course.subject}, ${course.schoolClass.name}` },
        h('p', { class: 'muted' }, 'Chaque élève est présent sauf si vous le marquez absent ou en retard.'),
        students.map((student) => {
          const name = `eleve-${student.id}`;
          const minutes = uid('minutes');
          const state = absent.has(student.id) ? 'ABSENT' : late.has(student.id) ? 'LATE' : 'PRESENT';
          return h('fieldset', { class: 'student', 'data-student-id': student.id },
            h('legend', {}, student.person.displayName),
            [['PRESENT', 'Présent'], ['ABSENT', 'Absent'], ['LATE', 'En retard']].map(([value, label]) => {
              const id = uid('etat');
              return h('span', { class: 'choice' },
                h('input', { type: 'radio', id, name, value, checked: state === value }),
                h('label', { for: id }, label));
            }),
            h('span', { class: 'minutes' },
              h('label', { for: minutes }, 'Minutes de retard'),
              h('input', { id: minutes, type: 'number', min: 1, max: 240, value: late.get(student.id) ?? 5, 'data-minutes': student.id })));
        }),
        h('button', { type: 'submit' }, 'Enregistrer l’appel'),
        errors);
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        const input = { courseId: course.id, absent: [], late: [], idempotencyKey: idempotencyKey() };
        for (const student of students) {
          const choice = form.querySelector(`input[name="eleve-${student.id}"]:checked`)?.value;
          if (choice === 'ABSENT') input.absent.push(student.id);
          if (choice === 'LATE') {
            const minutes = Number(form.querySelector(`input[data-minutes="${student.id}"]`).value) || 5;
            input.late.push({ studentId: student.id, minutesLate: minutes });
          }
        }
        const button = form.querySelector('button[type=submit]');
        button.disabled = true;
        attempt(errors, async () => {
          const data = await gql(TAKE, { input });
          course.rollCall = data.takeRollCall;
          summary.textContent = rollSummary(course.rollCall);
          notice(errors, `Appel enregistré : ${rollSummary(course.rollCall)}`);
          form.dataset.saved = 'true';
        }).finally(() => {
          button.disabled = false;
        });
      });
      box.replaceChildren(form);
    });
  }

  async function loadGradebooks() {
    await attempt(messages, async () => {
      // A teacher's classes and subjects are those of their weekly courses:
      // three weeks back and one ahead see them all, holidays included.
      const data = await gql(`query Classes($from: Date!, $to: Date!) {
        myCourses(from: $from, to: $to) { subject schoolClass { id name } }
      }`, { from: addDays(today(), -21), to: addDays(today(), 7) });
      const pairs = new Map();
      for (const c of data.myCourses) {
        pairs.set(`${c.schoolClass.id}|${c.subject}`, { classId: c.schoolClass.id, className: c.schoolClass.name, subject: c.subject });
      }
      const choices = [...pairs.values()].sort((a, b) => `${a.className}${a.subject}`.localeCompare(`${b.className}${b.subject}`, 'fr'));
      const pick = uid('carnet');
      const select = h('select', { id: pick, name: 'carnet' },
        h('option', { value: '' }, '— Choisir une classe et une matière —'),
        choices.map((c) => h('option', { value: `${c.classId}|${c.subject}` }, `${c.className} · ${c.subject}`)));
      const book = h('div', {});
      select.addEventListener('change', () => {
        const choice = pairs.get(select.value);
        if (choice) gradebook(choice, book);
        else book.replaceChildren();
      });
      grades.replaceChildren(section('Saisie des notes',
        h('div', { class: 'inline-field' }, h('label', { for: pick }, 'Classe et matière'), select), book));
    });
  }

  function gradebook(choice, book, selected) {
    book.replaceChildren(h('p', {}, 'Chargement…'));
    attempt(book, async () => {
      const { schoolClass } = await gql(GRADEBOOK, { classId: choice.classId, subject: choice.subject });
      const assessments = [...schoolClass.gradebook].sort((a, b) => b.date.localeCompare(a.date));
      const pick = uid('evaluation');
      const select = h('select', { id: pick, name: 'evaluation' },
        assessments.map((a) => h('option', { value: a.id, selected: a.id === selected }, `${a.title} (${a.date.split('-').reverse().join('/')}, sur ${number(a.outOf, 0)})`)));
      const grid = h('div', {});
      const show = () => {
        const assessment = assessments.find((a) => a.id === select.value);
        if (assessment) gradeGrid(assessment, [...schoolClass.students].sort(byName), grid, () => gradebook(choice, book, assessment.id));
      };
      select.addEventListener('change', show);
      book.replaceChildren(
        assessments.length ? h('div', { class: 'inline-field' }, h('label', { for: pick }, 'Évaluation'), select) : h('p', {}, 'Aucune évaluation encore.'),
        grid,
        newAssessment(choice, (id) => gradebook(choice, book, id)));
      show();
    });
  }

  function gradeGrid(assessment, students, grid, reload) {
    const byStudent = new Map(assessment.grades.map((g) => [g.student.id, g]));
    const errors = h('div', { class: 'messages', 'aria-live': 'polite' });
    const rows = students.map((student) => {
      const grade = byStudent.get(student.id);
      const scoreId = uid('note');
      const statusId = uid('statut');
      const recorded = grade ? (grade.status === 'GRADED' ? `${number(grade.score, 2)} / ${number(assessment.outOf, 0)}` : STATUS.find(([v]) => v === grade.status)[1]) : null;
      return h('tr', { 'data-student-id': student.id },
        h('th', { scope: 'row' }, student.person.displayName),
        recorded ? h('td', { colspan: 2 }, recorded, h('span', { class: 'muted' }, ' (enregistrée)'))
          : [h('td', {}, h('label', { for: scoreId, class: 'sr-only' }, `Note de ${student.person.displayName}`),
            h('input', { id: scoreId, type: 'number', min: 0, max: assessment.outOf, step: 0.25, inputmode: 'decimal', 'data-score': student.id })),
          h('td', {}, h('label', { for: statusId, class: 'sr-only' }, `Statut de ${student.person.displayName}`),
            h('select', { id: statusId, 'data-status': student.id }, STATUS.map(([v, l]) => h('option', { value: v }, l))))]);
    });
    const form = h('form', {},
      h('table', { class: 'grid' },
        h('caption', {}, `${assessment.title}, notes sur ${number(assessment.outOf, 0)}, coefficient ${number(assessment.coefficient, 1)}`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Élève'), h('th', { scope: 'col' }, 'Note'), h('th', { scope: 'col' }, 'Statut'))),
        h('tbody', {}, rows)),
      h('button', { type: 'submit' }, 'Enregistrer les notes saisies'),
      errors);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const inputs = [];
      for (const select of form.querySelectorAll('select[data-status]')) {
        const studentId = select.dataset.status;
        const scoreField = form.querySelector(`input[data-score="${studentId}"]`);
        const status = select.value;
        if (status === 'GRADED' && scoreField.value === '') continue;
        inputs.push({
          assessmentId: assessment.id, studentId, status, score: status === 'GRADED' ? Number(scoreField.value) : null, idempotencyKey: idempotencyKey(),
        });
      }
      if (inputs.length === 0) {
        notice(errors, 'Aucune note saisie.');
        return;
      }
      // One request: one aliased recordGrade per row.
      const query = `mutation Notes(${inputs.map((_, i) => `$g${i}: RecordGradeInput!`).join(', ')}) {
        ${inputs.map((_, i) => `g${i}: recordGrade(input: $g${i}) { id }`).join('\n')}
      }`;
      const variables = Object.fromEntries(inputs.map((input, i) => [`g${i}`, input]));
      attempt(errors, async () => {
        await gql(query, variables);
        reload();
      });
    });
    grid.replaceChildren(form);
  }

  function newAssessment(choice, created) {
    const ids = { title: uid('titre-eval'), date: uid('date-eval'), coef: uid('coef'), out: uid('bareme') };
    const errors = h('div', { class: 'messages', 'aria-live': 'polite' });
    const form = h('form', { class: 'stack' },
      h('label', { for: ids.title }, 'Intitulé'), h('input', { id: ids.title, name: 'titre', required: true, maxlength: 200 }),
      h('label', { for: ids.date }, 'Date'), h('input', { id: ids.date, name: 'date', type: 'date', required: true, value: today() }),
      h('label', { for: ids.coef }, 'Coefficient'), h('input', { id: ids.coef, name: 'coef', type: 'number', min: 0.5, step: 0.5, value: 1, required: true }),
      h('label', { for: ids.out }, 'Noté sur'), h('input', { id: ids.out, name: 'bareme', type: 'number', min: 1, step: 1, value: 20, required: true }),
      h('button', { type: 'submit' }, 'Créer l’évaluation'), errors);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      attempt(errors, async () => {
        const data = await gql('mutation Eval($input: CreateAssessmentInput!) { createAssessment(input: $input) { id } }', {
          input: {
            classId: choice.classId,
            subject: choice.subject,
            title: form.elements.titre.value,
            date: form.elements.date.value,
            coefficient: Number(form.elements.coef.value),
            outOf: Number(form.elements.bareme.value),
          },
        });
        created(data.createAssessment.id);
      });
    });
    return h('details', {}, h('summary', {}, 'Nouvelle évaluation'), form);
  }
}

function rollSummary(rollCall) {
  if (!rollCall) return 'Appel non fait.';
  return `${rollCall.presentCount} présent${rollCall.presentCount > 1 ? 's' : ''}, ${rollCall.absent.length} absent${rollCall.absent.length > 1 ? 's' : ''}, ${rollCall.late.length} en retard.`;
}
