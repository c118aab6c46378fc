//! IAM as AWS evaluates it, with no SDK: policy documents in, a request
//! (an action, the resource it is authorized against, the request's
//! context keys) in, a decision with its reason out.
//!
//! Two users read the same rules: testkit's strict proxy, which refuses a
//! call the caller's role does not allow before moto sees it, and
//! `techctl verify`, which proves from what AWS holds that each role may
//! do what the system needs and nothing more. What tests enforce and what
//! `verify` proves therefore cannot drift apart.
//!
//! What is evaluated (AWS's "policy evaluation logic" for one account,
//! identity-based policies and a permissions boundary, and the trust
//! policy of `AssumeRole…`): an explicit Deny in any policy wins; an
//! action is allowed only when an identity policy allows it and, if the
//! role has a boundary, the boundary allows it too. `Action`/`NotAction`,
//! `Resource`/`NotResource`, `Principal`, and the condition operators
//! `String…`, `Arn…`, `Bool`, `Null` and `Numeric…`, each with
//! `…IfExists` and the set operators `ForAnyValue:`/`ForAllValues:`.
//! Not evaluated: service control policies, session policies, resource
//! policies beyond trust, `Date…` and `IpAddress` (a policy using one is
//! refused when parsed, never silently taken as true).
//!
//! [`reference`] is AWS's Service Authorization Reference for the services
//! the stack uses: which resource type each action is authorized against,
//! which actions take only `*`, which condition keys each takes.

mod condition;
mod evaluate;
mod pattern;
mod policy;
pub mod reference;

pub use condition::{Condition, Operator};
pub use evaluate::{Context, Decision, Denial, Principal, Request, evaluate, evaluate_trust};
pub use pattern::{action_matches, glob, resource_matches};
pub use policy::{
    Effect, Patterns, Policy, PolicyError, Principals, Statement, StatementRef, decode_document,
    document_json, statement_values, strings_of,
};

#[cfg(test)]
mod tests;
