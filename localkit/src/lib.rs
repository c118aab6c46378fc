//! Local stand-ins for the cloud's parts, shared by `techctl dev` and the
//! tests: the system's PostgreSQL binaries, run as the right user, and a
//! Mercado Pago sandbox that signs its webhooks as Mercado Pago does.

pub mod mercadopago;
pub mod postgres;
