//! The engine's integration tests: the apply walk driven against an
//! in-memory provider, in milliseconds, without any cloud.

mod apply;
mod fake;
