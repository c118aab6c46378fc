//! What every service of the ordering system shares, so that all five
//! behave the same at their edges: configuration read from the environment
//! with errors that name the variable, tracing, a PostgreSQL pool with
//! embedded migrations, one error type rendered as RFC 9457 problem
//! details, JWT authentication against a cached JWK set, health checks,
//! request ids, graceful shutdown, an OpenAPI document with a page that
//! renders it, and an HTTP client. The saga's messaging (outbox, inbox,
//! SNS/SQS and PostgreSQL transports) is `service-messaging`, so that the
//! services outside the saga link none of it.

pub mod auth;
pub mod config;
pub mod db;
pub mod docs;
pub mod error;
pub mod etag;
pub mod extract;
pub mod health;
pub mod http_client;
pub mod keys;
pub mod limit;
pub mod provision;
pub mod server;
pub mod telemetry;

pub use error::{ApiError, ApiResult};
