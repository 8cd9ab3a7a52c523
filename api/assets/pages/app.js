// Start-up: take the token, ask who is signed in (`me`), offer the views
// their roles open, and show the one the address names (#parent,
// #enseignant, #vie-scolaire, #direction).

import { takeToken, setToken, forgetToken, gql } from './api.js';
import { h, uid, explain, setTimeZone } from './ui.js';
import { parentView } from './parent.js';
import { teacherView } from './teacher.js';
import { staffView } from './staff.js';
import { headView } from './head.js';

const VIEWS = [
  { hash: '#parent', label: 'Mes enfants', role: 'GUARDIAN', render: parentView },
  { hash: '#enseignant', label: 'Enseignement', role: 'TEACHER', render: teacherView },
  { hash: '#vie-scolaire', label: 'Vie scolaire', role: 'EDUCATION_STAFF', render: staffView },
  { hash: '#direction', label: 'Direction', role: 'HEAD', render: headView },
];

const main = document.getElementById('contenu');
const nav = document.getElementById('navigation');
const who = document.getElementById('qui');
let current = null;
let shown = null;

function signIn(reason) {
  shown = null;
  nav.replaceChildren();
  who.replaceChildren();
  const field = uid('jeton');
  const help = uid('aide');
  const form = h('form', { class: 'card', 'aria-labelledby': 'titre-connexion' },
    h('h2', { id: 'titre-connexion' }, 'Connexion'),
    reason ? h('p', { class: 'notice error', role: 'alert' }, reason) : null,
    h('p', { id: help }, 'Ouvrez cette page depuis votre ENT : il vous connecte automatiquement. ',
      'Sinon, collez ici le jeton d’accès qui vous a été remis.'),
    h('label', { for: field }, 'Jeton d’accès'),
    h('textarea', { id: field, name: 'jeton', rows: 4, required: true, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': help }),
    h('button', { type: 'submit' }, 'Se connecter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(form.elements.jeton.value);
    start();
  });
  main.replaceChildren(form);
  document.title = 'Connexion — Registre';
}

function show(me, views) {
  const view = views.find((v) => v.hash === location.hash) ?? views[0];
  // The link to the view already shown (the first one, before any choice)
  // changes the address only: nothing to load again.
  if (view === shown) return;
  shown = view;
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === view.hash) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  current?.close?.();
  main.replaceChildren();
  document.title = `${view.label} — Registre`;
  current = view.render(main, me);
  main.focus({ preventScroll: true });
}

async function start() {
  if (!takeToken()) {
    signIn(null);
    return;
  }
  let me;
  try {
    ({ me } = await gql('{ me { id displayName roles establishment { id name timeZone } } }'));
  } catch (error) {
    if (error.code === 'UNAUTHENTICATED') {
      forgetToken();
      signIn(explain(error));
    } else {
      main.replaceChildren(h('p', { class: 'notice error', role: 'alert' }, explain(error)));
    }
    return;
  }
  setTimeZone(me.establishment?.timeZone);
  const views = VIEWS.filter((v) => me.roles.includes(v.role));
  who.replaceChildren(
    h('span', {}, me.displayName),
    me.establishment ? h('span', { class: 'muted' }, ` · ${me.establishment.name}`) : null,
    h('button', {
      type: 'button',
      class: 'link',
      onclick: () => {
        forgetToken();
        current?.close?.();
        signIn(null);
      },
    }, 'Se déconnecter'));
  if (views.length === 0) {
    main.replaceChildren(h('p', { class: 'notice' },
      'Cette page s’adresse aux parents, aux enseignants, à la vie scolaire et à la direction. ',
      'Votre profil y a accès par l’API.'));
    return;
  }
  nav.replaceChildren(h('ul', {}, views.map((v) => h('li', {}, h('a', { href: v.hash }, v.label)))));
  // The skip link changes the fragment too: only a view's name switches views.
  window.onhashchange = () => {
    if (views.some((v) => v.hash === location.hash)) show(me, views);
  };
  show(me, views);
}

// An expired session met by any request brings the sign-in form back.
document.addEventListener('registre-error', (event) => {
  if (event.detail?.code === 'UNAUTHENTICATED') {
    forgetToken();
    current?.close?.();
    signIn(explain(event.detail));
  }
});

start();
