//! What operators supply to the services, and under which names: each
//! value lives in the service's own secret (`techctl secrets set SERVICE
//! NAME`) and reaches its tasks as an environment variable, by reference on
//! AWS and from `.techctl/secrets.json` under `techctl dev`.

/// The values the payment service reads from its secret, with what they
/// hold; operators set them with `techctl secrets set payment NAME`.
pub const MERCADO_PAGO_KEYS: [(&str, &str, &str); 4] = [
    (
        "MERCADOPAGO_ACCESS_TOKEN",
        "mercadopago_access_token",
        "the account's access token",
    ),
    (
        "MERCADOPAGO_WEBHOOK_SECRET",
        "mercadopago_webhook_secret",
        "the webhook signing secret",
    ),
    (
        "MERCADOPAGO_COLLECTOR_ID",
        "mercadopago_collector_id",
        "the collector (user) id",
    ),
    (
        "MERCADOPAGO_POS_ID",
        "mercadopago_pos_id",
        "the point of sale's external id",
    ),
];

/// The user service's first admin's password (its e-mail is the
/// blueprint's `admin.email`).
pub const ADMIN_PASSWORD: (&str, &str, &str) = (
    "ADMIN_PASSWORD",
    "admin_password",
    "the first admin's password, 12 characters at least",
);

/// What operators set for `service` with `techctl secrets set`: (the
/// variable its tasks get, the name in its secret, what it holds).
pub fn operator_values(service: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match service {
        "payment" => &MERCADO_PAGO_KEYS,
        "user" => std::slice::from_ref(&ADMIN_PASSWORD),
        _ => &[],
    }
}
