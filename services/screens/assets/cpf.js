// The CPF's check digits, checked as the customer types, so a mistyped
// number is caught at the kiosk instead of by the user service.

/** The digits of `text`, at most 11. */
export function digits(text) {
  return text.replace(/\D/g, '').slice(0, 11);
}

/** 000.000.000-00, as far as the digits go. */
export function format(text) {
  const d = digits(text);
  return [d.slice(0, 3), d.slice(3, 6), d.slice(6, 9)].filter(Boolean).join('.')
    + (d.length > 9 ? `-${d.slice(9)}` : '');
}

function checkDigit(d, length) {
  let sum = 0;
  for (let i = 0; i < length; i++) sum += Number(d[i]) * (length + 1 - i);
  const rest = (sum * 10) % 11;
  return rest === 10 ? 0 : rest;
}

/** Whether `text` holds a CPF whose check digits are right. */
export function valid(text) {
  const d = digits(text);
  if (d.length !== 11 || /^(\d)\1{10}$/.test(d)) return false;
  return checkDigit(d, 9) === Number(d[9]) && checkDigit(d, 10) === Number(d[10]);
}
