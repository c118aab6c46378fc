//! The decision: AWS's policy evaluation logic within one account.
//!
//! 1. A Deny statement that applies, in any identity policy or the
//!    permissions boundary, denies (explicit deny).
//! 2. Otherwise an Allow in an identity policy is needed (else implicit
//!    deny),
//! 3. and, when the role has a permissions boundary, an Allow in it too:
//!    the boundary limits, it never grants.

use std::collections::BTreeMap;
use std::fmt;

use crate::pattern::{action_matches, resource_matches};
use crate::policy::{Effect, Policy, Principals, Statement, StatementRef};

/// The request's condition keys and their values; keys are
/// case-insensitive, a key may hold several values (`aws:TagKeys`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    keys: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// The same with `key` holding `value`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Context {
        self.set(key, vec![value.into()]);
        self
    }

    /// Sets a key to its values (several for a multi-valued key).
    pub fn set(&mut self, key: &str, values: Vec<String>) {
        self.keys.insert(key.to_ascii_lowercase(), values);
    }

    /// Sets `PREFIX/KEY` for each tag (`aws:ResourceTag`, `aws:RequestTag`).
    pub fn set_tags<'a>(
        &mut self,
        prefix: &str,
        tags: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        for (key, value) in tags {
            self.set(&format!("{prefix}/{key}"), vec![value.clone()]);
        }
    }

    pub fn get(&self, key: &str) -> Option<&Vec<String>> {
        self.keys.get(&key.to_ascii_lowercase())
    }
}

/// One authorization: an action on the resource AWS authorizes it
/// against (`*` for actions that take none), in a context.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub context: &'a Context,
}

/// Why a request is not allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// A Deny statement applies.
    Explicit(StatementRef),
    /// No identity policy allows it.
    NoAllow,
    /// An identity policy allows it, the named boundary does not.
    OutsideBoundary(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// With the statements that allow it.
    Allowed(Vec<StatementRef>),
    Denied(Denial),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allowed(by) => write!(f, "allowed by {}", by[0]),
            Decision::Denied(Denial::Explicit(by)) => write!(f, "with an explicit deny in {by}"),
            Decision::Denied(Denial::NoAllow) => {
                write!(f, "because no identity-based policy allows it")
            }
            Decision::Denied(Denial::OutsideBoundary(name)) => write!(
                f,
                "because no permissions boundary allows it (the boundary {name})"
            ),
        }
    }
}

impl Statement {
    /// Whether the statement covers the action and resource and its
    /// conditions hold. A statement without `Resource` (a trust policy's)
    /// covers the role it belongs to.
    pub fn applies(&self, request: &Request<'_>) -> bool {
        self.actions.covers(request.action, action_matches)
            && self
                .resources
                .as_ref()
                .is_none_or(|r| r.covers(request.resource, resource_matches))
            && self.conditions.iter().all(|c| c.holds(request.context))
    }
}

/// The statements of `policies` that apply, split by effect.
fn applying<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    request: &Request<'_>,
) -> (Vec<StatementRef>, Option<StatementRef>) {
    let mut allows = Vec::new();
    for policy in policies {
        for (at, statement) in policy.statements() {
            if statement.applies(request) {
                match statement.effect {
                    Effect::Deny => return (allows, Some(at)),
                    Effect::Allow => allows.push(at),
                }
            }
        }
    }
    (allows, None)
}

/// Whether a principal with `identity` policies, limited by `boundary`,
/// may make `request`.
pub fn evaluate(identity: &[Policy], boundary: Option<&Policy>, request: &Request<'_>) -> Decision {
    let (allows, deny) = applying(identity, request);
    if let Some(deny) = deny {
        return Decision::Denied(Denial::Explicit(deny));
    }
    if allows.is_empty() {
        return Decision::Denied(Denial::NoAllow);
    }
    if let Some(boundary) = boundary {
        let (within, deny) = applying([boundary], request);
        if let Some(deny) = deny {
            return Decision::Denied(Denial::Explicit(deny));
        }
        if within.is_empty() {
            return Decision::Denied(Denial::OutsideBoundary(boundary.name.clone()));
        }
    }
    Decision::Allowed(allows)
}

/// Who asks to assume a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal<'a> {
    /// A role or user, by ARN.
    Aws(&'a str),
    /// An AWS service, `ecs-tasks.amazonaws.com`.
    Service(&'a str),
    /// A web identity's provider, `arn:aws:iam::ACCOUNT:oidc-provider/…`.
    Federated(&'a str),
}

impl Principal<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Principal::Aws(_) => "AWS",
            Principal::Service(_) => "Service",
            Principal::Federated(_) => "Federated",
        }
    }

    fn value(&self) -> &str {
        match self {
            Principal::Aws(v) | Principal::Service(v) | Principal::Federated(v) => v,
        }
    }

    /// Whether a principal element's value names this principal: itself,
    /// `*`, or for a role its account (`123456789012` or `…:root`).
    fn named_by(&self, listed: &str) -> bool {
        if listed == "*" || listed == self.value() {
            return true;
        }
        let Principal::Aws(arn) = self else {
            return false;
        };
        let account = arn.split(':').nth(4).unwrap_or_default();
        !account.is_empty()
            && (listed == account || listed.ends_with(&format!(":iam::{account}:root")))
    }

    fn in_map(&self, map: &BTreeMap<String, Vec<String>>) -> bool {
        map.get(self.kind())
            .is_some_and(|values| values.iter().any(|v| self.named_by(v)))
    }
}

fn names(principals: Option<&Principals>, who: &Principal<'_>) -> bool {
    match principals {
        Some(Principals::Any) => true,
        Some(Principals::Listed(map)) => who.in_map(map),
        Some(Principals::AllBut(map)) => !who.in_map(map),
        None => false,
    }
}

/// Whether a role's trust policy lets `who` take the role with `action`
/// (`sts:AssumeRole`, `sts:AssumeRoleWithWebIdentity`) in `context` (a
/// web identity's claims as `ISSUER:aud`, `ISSUER:sub`, …).
pub fn evaluate_trust(
    trust: &Policy,
    who: &Principal<'_>,
    action: &str,
    context: &Context,
) -> Decision {
    let request = Request {
        action,
        resource: "*",
        context,
    };
    let mut allows = Vec::new();
    for (at, statement) in trust.statements() {
        if !names(statement.principals.as_ref(), who) || !statement.applies(&request) {
            continue;
        }
        match statement.effect {
            Effect::Deny => return Decision::Denied(Denial::Explicit(at)),
            Effect::Allow => allows.push(at),
        }
    }
    if allows.is_empty() {
        Decision::Denied(Denial::NoAllow)
    } else {
        Decision::Allowed(allows)
    }
}
