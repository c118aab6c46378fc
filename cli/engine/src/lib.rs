//! The engine: the stack's resources as data, the plan that makes what is
//! match what the blueprint asks for, and the walk that carries it out.
//!
//! blueprint → [`plan::expand`] → desired resources; a provider's
//! observation → observed resources; both → [`plan::compute`] → a
//! [`plan::Plan`] → [`apply`] → events. The engine knows no cloud: it
//! drives a [`apply::Provider`] (the AWS one lives in its own crate), so
//! every ordering rule is tested here against an in-memory provider.

pub mod apply;
pub mod clock;
pub mod plan;
