//! Reading AWS policy documents (IAM role policies, SQS queue policies),
//! where `Statement`, `Action`, `Resource` and condition values may each be
//! one item or a list: the same reading `verify` evaluates policies with.

pub use crate::verify::iam::{statement_values as statements, strings};
