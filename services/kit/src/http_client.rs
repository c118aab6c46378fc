//! The HTTP client services use to call each other and Mercado Pago: the
//! one techctl uses too (`httpkit`), so that TLS, deadlines and errors are
//! the same everywhere.

pub use httpkit::{Error, HttpClient, Response};
