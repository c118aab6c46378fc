// What every screen shares: calls to the APIs through the gateway (the
// page's own origin), elements built from text nodes only (no text a user
// typed can ever become markup), money in reais, and the staff login.

/** An answer of 4xx/5xx, with the API's problem document. */
export class Problem extends Error {
  constructor(status, doc) {
    super((doc && (doc.detail || doc.title)) || `erro ${status}`);
    this.status = status;
    this.errors = (doc && doc.errors) || [];
  }
}

/** The system could not be reached (or its gateway could not reach it). */
export class Offline extends Error {}

const UNREACHABLE = new Set([502, 503, 504]);

/**
 * Calls an API. `etag` makes it conditional: `{status: 304}` when nothing
 * changed. Throws Offline when the system cannot be reached, Problem on any
 * other error answer.
 */
export async function call(path, { method = 'GET', body, token, etag, idempotencyKey } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (etag) headers['if-none-match'] = etag;
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  let init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = typeof body === 'string' ? 'text/plain' : 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new Offline('sem conexão');
  }
  if (res.status === 304) return { status: 304, etag };
  if (UNREACHABLE.has(res.status)) throw new Offline(`o sistema respondeu ${res.status}`);
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null)
    : res.status === 204 ? null : await res.text();
  if (!res.ok) throw new Problem(res.status, data);
  return { status: res.status, data, etag: res.headers.get('etag') };
}

/** An element: `props` sets attributes (`text` its text, `on*` handlers). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

const BRL = new Intl.NumberFormat('pt-BR', { style: 'currency', currency: 'BRL' });

export function money(cents) {
  return BRL.format(cents / 100);
}

export function $(selector) {
  return document.querySelector(selector);
}

/** Minutes since `iso`, as a cook reads it. */
export function age(iso, now = Date.now()) {
  const minutes = Math.max(0, Math.floor((now - Date.parse(iso)) / 60000));
  return minutes === 0 ? 'agora' : `há ${minutes} min`;
}

/**
 * Runs `tick` every `everyMs`, and again sooner when asked; after a failure
 * it waits twice as long each time, up to 15 s.
 */
export function every(everyMs, tick) {
  let wait = everyMs;
  let timer = null;
  let stopped = false;
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    try {
      await tick();
      wait = everyMs;
    } catch (e) {
      wait = Math.min(wait * 2, 15000);
      if (!(e instanceof Offline) && !(e instanceof Problem)) console.error(e);
    }
    if (!stopped) timer = setTimeout(run, wait);
  };
  run();
  return { now: run, stop() { stopped = true; clearTimeout(timer); } };
}

/** Seconds left in a JWT, from its `exp` (0 when unreadable). */
function secondsLeft(token) {
  try {
    const payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return payload.exp - Date.now() / 1000;
  } catch {
    return 0;
  }
}

/**
 * An employee's session: the token lives in this tab only (sessionStorage)
 * and is dropped when it expires or the API refuses it. `start(token)` runs
 * once logged in.
 */
export function staffSession(key, root, start) {
  const login = el('form', { class: 'login', novalidate: true });
  const email = el('input', { id: 'login-email', type: 'email', autocomplete: 'username', required: true });
  const password = el('input', { id: 'login-password', type: 'password', autocomplete: 'current-password', required: true });
  const error = el('p', { class: 'field-error', id: 'login-error', role: 'alert' });
  login.append(
    el('h2', { text: 'Entrar (funcionários)' }),
    el('label', { for: 'login-email', text: 'E-mail' }), email,
    el('label', { for: 'login-password', text: 'Senha' }), password,
    error,
    el('div', { class: 'actions' }, el('button', { type: 'submit', text: 'Entrar' })),
  );
  const session = {
    token: null,
    end(message) {
      sessionStorage.removeItem(key);
      session.token = null;
      root.hidden = true;
      login.hidden = false;
      error.textContent = message || '';
      email.focus();
    },
  };
  login.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const { data } = await call('/auth/employee/token', {
        method: 'POST', body: { email: email.value, password: password.value },
      });
      password.value = '';
      begin(data.access_token);
    } catch (e) {
      error.textContent = e instanceof Offline ? 'Sem conexão com o sistema. Tente de novo.'
        : e.status === 401 ? 'E-mail ou senha incorretos.' : e.message;
    }
  });
  const begin = (token) => {
    sessionStorage.setItem(key, token);
    session.token = token;
    login.hidden = true;
    root.hidden = false;
    setTimeout(() => session.end('Sua sessão expirou. Entre de novo.'), secondsLeft(token) * 1000);
    start(session);
  };
  root.before(login);
  const saved = sessionStorage.getItem(key);
  if (saved && secondsLeft(saved) > 30) begin(saved);
  else session.end();
  return session;
}

/** What to tell a person about a failed call. */
export function explain(e) {
  if (e instanceof Offline) return 'Sem conexão com o sistema. Tentando de novo…';
  return e.message;
}
