// What every view shares: building elements without innerHTML (no markup is
// ever made from data), French dates, and errors said in plain French.

let zone = 'Europe/Paris';

/** Dates are shown in the establishment's time zone, not the device's. */
export function setTimeZone(name) {
  if (name) zone = name;
}

/** `h('p', { class: 'x', onclick: f }, 'text', child)` */
export function h(tag, attributes = {}, ...children) {
  const svg = ['svg', 'rect', 'g', 'text', 'title', 'line', 'desc', 'polyline'].includes(tag);
  const element = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

let ids = 0;
/** A fresh id, for a label's `for` or an `aria-describedby`. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** Today as YYYY-MM-DD in the establishment's calendar. */
export function today(offsetDays = 0) {
  const day = new Date(Date.now() + offsetDays * 86_400_000);
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(day);
}

/** Adds days to a YYYY-MM-DD date. */
export function addDays(date, days) {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

export function day(date) {
  return new Intl.DateTimeFormat('fr-FR', { timeZone: 'UTC', weekday: 'long', day: 'numeric', month: 'long' })
    .format(new Date(`${date}T12:00:00Z`));
}

export function dateTime(instant) {
  return new Intl.DateTimeFormat('fr-FR', { timeZone: zone, weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' })
    .format(new Date(instant));
}

export function time(instant) {
  return new Intl.DateTimeFormat('fr-FR', { timeZone: zone, hour: '2-digit', minute: '2-digit' }).format(new Date(instant));
}

export function number(value, digits = 1) {
  if (value === null || value === undefined) return '—';
  return new Intl.NumberFormat('fr-FR', { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}

export const STATES = {
  UNJUSTIFIED: 'Non justifiée',
  PENDING: 'Justification en attente',
  ACCEPTED: 'Justifiée',
  REJECTED: 'Justification refusée',
};

export const KINDS = { ABSENCE: 'Absence', LATENESS: 'Retard', DEPARTURE: 'Départ anticipé' };

/** An error as the person in front of the screen understands it. */
export function explain(error) {
  switch (error?.code) {
    case 'UNAUTHENTICATED':
      return 'Votre session a expiré. Reconnectez-vous depuis l’ENT pour continuer.';
    case 'FORBIDDEN':
      return 'Vous n’avez pas l’autorisation de voir ou de faire ceci.';
    case 'RATE_LIMITED':
      return error.retryAfter
        ? `Le serveur est très sollicité. Réessayez dans ${error.retryAfter} seconde${error.retryAfter > 1 ? 's' : ''}.`
        : 'Le serveur est très sollicité. Réessayez dans quelques instants.';
    case 'UNAVAILABLE':
      return 'Ce service est momentanément indisponible pour votre établissement. Réessayez dans quelques minutes.';
    case 'NETWORK':
      return 'Impossible de joindre le serveur. Vérifiez votre connexion à Internet, puis réessayez.';
    case 'NOT_FOUND':
      return 'Cet élément n’existe pas ou plus.';
    case 'CONFLICT':
      return 'Ces informations ont changé entre-temps. Rechargez la page puis recommencez.';
    case 'INVALID_INPUT':
      return `Certaines informations ne sont pas acceptées : ${error.message}`;
    default:
      return 'Une erreur est survenue sur le serveur. Réessayez plus tard.';
  }
}

/** A message in a live region: `role="alert"` for errors, `status` otherwise. */
export function notice(container, text, kind = 'status') {
  container.replaceChildren(h('p', { class: `notice ${kind}` }, text));
}

/** Runs `action`, showing its error (if any) in `container`. */
export async function attempt(container, action) {
  try {
    return await action();
  } catch (error) {
    if (!(error?.code)) console.error(error);
    notice(container, explain(error), 'error');
    document.dispatchEvent(new CustomEvent('registre-error', { detail: error }));
    return undefined;
  }
}

/** A labelled section of a view, with its heading. */
export function section(title, ...children) {
  const id = uid('titre');
  return h('section', { 'aria-labelledby': id, class: 'card' }, h('h2', { id }, title), ...children);
}

/** A section inside a section (a child's averages on the parent's page). */
export function subsection(title, ...children) {
  const id = uid('titre');
  return h('section', { 'aria-labelledby': id, class: 'card' }, h('h3', { id }, title), ...children);
}

/** A key that makes a retried mutation count once. */
export function idempotencyKey() {
  return crypto.randomUUID();
}
