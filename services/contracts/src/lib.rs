//! The saga's wire format, shared by every producer and consumer.
//!
//! An event travels in an [`Envelope`]: `meta` says what it is (name and
//! version), where it came from, when, and which order it belongs to;
//! `payload` is the event itself. Payload types are versioned: a consumer
//! decodes exactly the version it understands and refuses any other, so a
//! change of shape is a new version, never a silent reinterpretation.
//!
//! [`routes`] says which service consumes which event; the PostgreSQL
//! transport fans out from it, and techctl's blueprint must agree with it.

mod envelope;
pub mod events;
mod routes;

pub use envelope::{DecodeError, Envelope, Event, Meta};
pub use routes::{CONSUMERS, consumers_of, producer_of};
