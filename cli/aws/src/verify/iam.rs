//! The stack's roles as the `iam` crate evaluates them: the one evaluator
//! that testkit's strict proxy enforces in tests. A role's identity
//! policies (inline and attached) and its permissions boundary, `Action`
//! or `NotAction`, `Resource` or `NotResource`, conditions evaluated in the
//! context of the request being asked about; an explicit Deny wins, and
//! nothing allowed is denied.

use std::fmt;

use serde_json::Value;

pub use iam::{Context, Effect, Patterns, Statement, action_matches, glob, resource_matches};

use super::snapshot::Role;

/// A field that holds a string or a list of strings.
pub fn strings(value: Option<&Value>) -> Vec<String> {
    iam::strings_of(value)
}

/// The statements of a policy document, whether it holds one or a list.
pub fn statement_values(document: &Value) -> Vec<&Value> {
    iam::statement_values(document)
}

/// The statements of a policy document; one IAM would refuse (or this
/// evaluator cannot evaluate) is `None`: it grants nothing.
pub fn statements(document: &Value) -> Vec<Option<Statement>> {
    statement_values(document)
        .into_iter()
        .enumerate()
        .map(|(i, s)| Statement::parse(i + 1, s).ok())
        .collect()
}

/// Where a statement lives, for results to name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementRef {
    pub role: String,
    pub policy: String,
    /// 1-based, in document order.
    pub index: usize,
    pub sid: Option<String>,
}

impl StatementRef {
    fn of(role: &str, at: iam::StatementRef) -> StatementRef {
        StatementRef {
            role: role.to_string(),
            policy: at.policy,
            index: at.index,
            sid: at.sid,
        }
    }
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role {} policy {} statement {}",
            self.role, self.policy, self.index
        )?;
        if let Some(sid) = &self.sid {
            write!(f, " ({sid})")?;
        }
        Ok(())
    }
}

/// The outcome of asking whether a role may do an action on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// With the statements that allow it.
    Allowed(Vec<StatementRef>),
    /// With the statement that denies it.
    Denied(StatementRef),
    /// No statement allows it.
    NotAllowed,
    /// Its policies allow it; its permissions boundary (named) does not.
    OutsideBoundary(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// A role's identity policies and boundary, parsed.
fn policies(role: &Role) -> (Vec<iam::Policy>, Option<iam::Policy>) {
    let parse = |p: &super::snapshot::Policy| iam::Policy::parse_lenient(&p.name, &p.document).0;
    (
        role.policies.iter().map(parse).collect(),
        role.boundary.as_ref().map(parse),
    )
}

/// The context a question about `action` is asked in when the caller
/// states none: a role passed to ECS's tasks, as the stack passes them.
pub fn context_for(action: &str) -> Context {
    if action.eq_ignore_ascii_case("iam:PassRole") {
        Context::new().with("iam:PassedToService", "ecs-tasks.amazonaws.com")
    } else {
        Context::new()
    }
}

/// Whether the role may do `action` on `resource`, as the stack asks it.
pub fn decide(role: &Role, action: &str, resource: &str) -> Decision {
    decide_in(role, action, resource, &context_for(action))
}

/// Whether the role may do `action` on `resource` in `context`.
pub fn decide_in(role: &Role, action: &str, resource: &str, context: &Context) -> Decision {
    let (identity, boundary) = policies(role);
    let request = iam::Request {
        action,
        resource,
        context,
    };
    match iam::evaluate(&identity, boundary.as_ref(), &request) {
        iam::Decision::Allowed(by) => Decision::Allowed(
            by.into_iter()
                .map(|at| StatementRef::of(&role.name, at))
                .collect(),
        ),
        iam::Decision::Denied(iam::Denial::Explicit(at)) => {
            Decision::Denied(StatementRef::of(&role.name, at))
        }
        iam::Decision::Denied(iam::Denial::NoAllow) => Decision::NotAllowed,
        iam::Decision::Denied(iam::Denial::OutsideBoundary(name)) => {
            Decision::OutsideBoundary(name)
        }
    }
}

/// Every statement of a role's policies, with where it lives.
pub fn role_statements(role: &Role) -> Vec<(StatementRef, Statement)> {
    policies(role)
        .0
        .into_iter()
        .flat_map(|policy| {
            let name = policy.name.clone();
            policy.statements.into_iter().map(move |s| {
                let at = StatementRef {
                    role: role.name.clone(),
                    policy: name.clone(),
                    index: s.position,
                    sid: s.sid.clone(),
                };
                (at, s)
            })
        })
        .collect()
}

/// What in a role's policies the evaluator cannot read (and so treats as
/// granting nothing).
pub fn unreadable(role: &Role) -> Vec<String> {
    role.policies
        .iter()
        .chain(&role.boundary)
        .flat_map(|p| iam::Policy::parse_lenient(&p.name, &p.document).1)
        .map(|e| format!("role {}: {e}", role.name))
        .collect()
}

/// Whether a trust policy lets `service` assume the role, and what else
/// it lets in: principals other than that service, or anyone.
pub struct Trust {
    pub trusts_service: bool,
    pub others: Vec<String>,
}

pub fn trust(document: &Value, service: &str) -> Trust {
    let mut trusts_service = false;
    let mut others = Vec::new();
    for (i, s) in statement_values(document).into_iter().enumerate() {
        if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let assumes = strings(s.get("Action"))
            .iter()
            .any(|a| action_matches(a, "sts:AssumeRole"))
            || s.get("NotAction").is_some();
        if !assumes {
            continue;
        }
        let at = format!("trust statement {}", i + 1);
        if s.get("NotPrincipal").is_some() {
            others.push(format!(
                "{at}: NotPrincipal lets in everyone it does not list"
            ));
            continue;
        }
        match s.get("Principal") {
            Some(Value::String(p)) => others.push(format!("{at}: principal {p}")),
            Some(Value::Object(map)) => {
                for (kind, value) in map {
                    for p in strings(Some(value)) {
                        if kind == "Service" && p == service {
                            trusts_service = true;
                        } else {
                            others.push(format!("{at}: {kind} principal {p}"));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Trust {
        trusts_service,
        others,
    }
}

/// Whether a resource pattern means "anything": `*`, or an ARN whose
/// region, account and resource are all wildcards.
pub fn is_any_resource(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[3..].iter().all(|p| p.chars().all(|c| c == '*'))
        && parts[5].contains('*')
}

/// Whether an action pattern covers a whole service, or every service.
pub fn is_wildcard_action(pattern: &str) -> bool {
    pattern == "*"
        || pattern
            .split_once(':')
            .is_some_and(|(_, action)| action.chars().all(|c| c == '*'))
}

/// Whether AWS's Service Authorization Reference says `action` takes no
/// resource type: a statement can grant it on `*` alone.
pub fn takes_only_any_resource(action: &str) -> bool {
    iam::reference::aws()
        .action(action)
        .is_some_and(|a| a.takes_only_any_resource())
}

/// What is too broad about an Allow statement, if anything: wildcard
/// actions, `NotAction`/`NotResource`, or any resource for an action that
/// takes a narrower one.
pub fn breadth(statement: &Statement) -> Vec<String> {
    if statement.effect != iam::Effect::Allow {
        return vec![];
    }
    let mut problems = Vec::new();
    let actions = match &statement.actions {
        Patterns::Listed(list) => list.clone(),
        Patterns::AllBut(list) => {
            problems.push(format!(
                "NotAction [{}] allows every other action",
                list.join(", ")
            ));
            vec![]
        }
    };
    for a in actions.iter().filter(|a| is_wildcard_action(a)) {
        problems.push(format!("Action {a}"));
    }
    match &statement.resources {
        Some(Patterns::AllBut(list)) => problems.push(format!(
            "NotResource [{}] allows every other resource",
            list.join(", ")
        )),
        Some(Patterns::Listed(list)) => {
            if let Some(any) = list.iter().find(|r| is_any_resource(r)) {
                let narrowable: Vec<&String> = actions
                    .iter()
                    .filter(|a| !takes_only_any_resource(a))
                    .collect();
                if !narrowable.is_empty() || actions.is_empty() {
                    let named = narrowable
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    problems.push(format!("Resource {any} for {named}"));
                }
            }
        }
        None => {}
    }
    problems
}
