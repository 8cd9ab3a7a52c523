// The page's only way out: GraphQL to this node. Queries and mutations go
// as POST /graphql (JSON, or multipart for a document), the live absences
// over a WebSocket speaking graphql-transport-ws. The protocol is a handful
// of JSON messages, so the client is written here rather than vendored.

const KEY = 'registre.token';

/** The bearer token: from the address's fragment (`#token=...`, what the ENT
 * or `registre demo` hands over), then kept for this tab only and removed
 * from the address bar, history and any bookmark. */
export function takeToken() {
  const found = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (found) {
    sessionStorage.setItem(KEY, decodeURIComponent(found[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

export function setToken(token) {
  sessionStorage.setItem(KEY, token.trim().replace(/^Bearer\s+/i, ''));
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

function bearer() {
  return `Bearer ${sessionStorage.getItem(KEY) ?? ''}`;
}

/** A refusal, with the contract's `extensions.code` (or NETWORK when the
 * server could not be reached) and, when rate limited, the delay in seconds. */
export class ApiError extends Error {
  constructor(code, message, retryAfter) {
    super(message);
    this.code = code;
    this.retryAfter = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null;
  }
}

async function answer(response) {
  const header = Number.parseInt(response.headers.get('retry-after') ?? '', 10);
  let body;
  try {
    body = await response.json();
  } catch {
    const code = response.status === 429 ? 'RATE_LIMITED'
      : response.status === 401 ? 'UNAUTHENTICATED'
        : response.status >= 500 ? 'UNAVAILABLE' : 'INTERNAL';
    throw new ApiError(code, `HTTP ${response.status}`, header);
  }
  const error = body.errors?.[0];
  if (error) {
    const extensions = error.extensions ?? {};
    throw new ApiError(extensions.code ?? 'INTERNAL', error.message, extensions.retryAfter ?? header);
  }
  return body.data;
}

async function post(body, headers) {
  let response;
  try {
    response = await fetch('/graphql', { method: 'POST', headers: { authorization: bearer(), ...headers }, body });
  } catch (e) {
    throw new ApiError('NETWORK', String(e));
  }
  return answer(response);
}

/** Runs one GraphQL operation; resolves to its `data`, rejects with an ApiError. */
export function gql(query, variables = {}) {
  return post(JSON.stringify({ query, variables }), { 'content-type': 'application/json' });
}

/** Uploads a file as the GraphQL multipart request specification says
 * (the communication contract's `uploadAttachment`); resolves to its id. */
export async function upload(file) {
  const form = new FormData();
  form.append('operations', JSON.stringify({
    query: 'mutation ($file: Upload!) { uploadAttachment(file: $file) { id name } }',
    variables: { file: null },
  }));
  form.append('map', JSON.stringify({ 0: ['variables.file'] }));
  form.append('0', file, file.name);
  const data = await post(form, {});
  return data.uploadAttachment.id;
}

/** Opens an attachment (its `url` needs the bearer token too) in a new tab. */
export async function openAttachment(url) {
  let response;
  try {
    response = await fetch(url, { headers: { authorization: bearer() } });
  } catch (e) {
    throw new ApiError('NETWORK', String(e));
  }
  if (!response.ok) {
    await answer(response);
  }
  const blob = await response.blob();
  const link = URL.createObjectURL(blob);
  window.open(link, '_blank', 'noopener');
  setTimeout(() => URL.revokeObjectURL(link), 60_000);
}

/**
 * A subscription that survives lost connections: `variables()` is asked at
 * every (re)connection, so the caller passes `after` = the last position it
 * saw and the server replays what happened meanwhile. `onState` hears
 * 'live', 'lost' (retrying with backoff) or 'closed' (with an ApiError: the
 * session expired, or too many sockets; retried only when it says when).
 */
export function subscribe(query, variables, { onData, onState }) {
  let socket = null;
  let stopped = false;
  let attempt = 0;
  let timer = null;

  function retry(delayMs) {
    clearTimeout(timer);
    timer = setTimeout(connect, delayMs);
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/graphql`, 'graphql-transport-ws');
    socket = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: bearer() } }));
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'connection_ack') {
        attempt = 0;
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: variables() } }));
        onState('live');
      } else if (message.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      } else if (message.type === 'next' && message.id === '1') {
        const error = message.payload.errors?.[0];
        if (error) {
          onState('closed', new ApiError(error.extensions?.code ?? 'INTERNAL', error.message));
        } else {
          onData(message.payload.data);
        }
      } else if (message.type === 'error' && message.id === '1') {
        const error = message.payload?.[0] ?? {};
        stopped = true;
        ws.close(1000);
        onState('closed', new ApiError(error.extensions?.code ?? 'INTERNAL', error.message ?? ''));
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws || stopped) return;
      if (event.code === 4401 || event.code === 4403) {
        stopped = true;
        onState('closed', new ApiError(event.code === 4401 ? 'UNAUTHENTICATED' : 'FORBIDDEN', event.reason));
        return;
      }
      onState('lost');
      // Backoff with jitter, so that a restarted node is not met by every
      // page at the same instant.
      const delay = Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      retry(event.code === 4429 ? Math.max(delay, 5_000) : delay);
    };
  }

  connect();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      socket?.close(1000);
    },
    /** Drops the connection as a network would: it is then resumed. */
    drop() {
      socket?.close(4000, 'dropped');
    },
  };
}
