// The pickup board: order numbers only (no names: LGPD), refreshed every
// two seconds with If-None-Match, so a board that has not changed costs
// the system a 304.

import { $, Offline, call, el, every, explain } from './common.js';

let etag = null;

function numbers(list) {
  return list.map((n) => el('li', { text: n }));
}

every(2_000, async () => {
  try {
    const answer = await call('/production/board', { etag });
    if (answer.status !== 304) {
      etag = answer.etag;
      $('#preparing').replaceChildren(...numbers(answer.data.preparing));
      $('#ready').replaceChildren(...numbers(answer.data.ready));
    }
    $('#updated').textContent = '';
  } catch (e) {
    $('#updated').textContent = e instanceof Offline ? 'Sem conexão: o painel pode estar desatualizado.' : explain(e);
    throw e;
  }
});
