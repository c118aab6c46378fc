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

/**
 * Runs `render`, which may replace the focused element, and gives the focus
 * back to the element with the same id: a keyboard user stays where they
 * were when a screen refreshes.
 */
export function keepingFocus(render) {
  const id = document.activeElement && document.activeElement.id;
  render();
  if (!id) return;
  const again = document.getElementById(id);
  if (again && again !== document.activeElement) again.focus();
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

/** The longest a browser timer may wait. */
const TIMER_MAX = 2 ** 31 - 1;

/**
 * An employee's session: the token lives in this tab only (sessionStorage)
 * with the moment it expires, measured from when it arrived (so the
 * device's clock may be wrong), and is dropped then or when the API
 * refuses it. `start(session)` runs once logged in, `stop()` when the
 * session ends.
 */
export function staffSession(key, root, { start, stop = () => {} }) {
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
  let expiry = null;
  const session = {
    token: null,
    end(message) {
      clearTimeout(expiry);
      const was = session.token;
      sessionStorage.removeItem(key);
      session.token = null;
      if (was) stop();
      root.hidden = true;
      login.hidden = false;
      error.textContent = message || '';
      email.focus();
    },
  };
  const begin = (token, until) => {
    sessionStorage.setItem(key, JSON.stringify({ token, until }));
    session.token = token;
    login.hidden = true;
    root.hidden = false;
    clearTimeout(expiry);
    expiry = setTimeout(() => session.end('Sua sessão expirou. Entre de novo.'),
      Math.min(Math.max(until - Date.now(), 0), TIMER_MAX));
    start(session);
  };
  login.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const { data } = await call('/auth/employee/token', {
        method: 'POST', body: { email: email.value, password: password.value },
      });
      password.value = '';
      begin(data.access_token, Date.now() + data.expires_in * 1000);
    } catch (e) {
      error.textContent = e instanceof Problem && e.status === 401 ? 'E-mail ou senha incorretos.'
        : e instanceof Problem && e.status === 403 ? 'Esta conta está desativada: fale com o gerente.'
          : explain(e);
    }
  });
  root.before(login);
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(key));
  } catch {
    saved = null;
  }
  if (saved && typeof saved.token === 'string' && saved.until - Date.now() > 30_000) begin(saved.token, saved.until);
  else session.end();
  return session;
}

const SAID = {
  401: 'Sua sessão expirou. Entre de novo.',
  403: 'Esta conta não tem permissão para isso.',
  404: 'Não encontrado: talvez já tenha sido removido.',
  409: 'Outra pessoa alterou isto agora há pouco. A tela foi atualizada.',
  422: 'Alguns dados não foram aceitos: confira e tente de novo.',
  429: 'Muitas tentativas seguidas. Aguarde um pouco e tente de novo.',
};

/** What to tell a person about a failed call, in their words; the API's
 * own text is for developers (and the browser's console). */
export function explain(e) {
  if (e instanceof Offline) return 'Sem conexão com o sistema. Tentando de novo…';
  if (e instanceof Problem) {
    console.warn(`API ${e.status}: ${e.message}`);
    return SAID[e.status] || 'O sistema falhou. Tente de novo em instantes.';
  }
  console.error(e);
  return 'Algo deu errado nesta tela. Recarregue a página.';
}
