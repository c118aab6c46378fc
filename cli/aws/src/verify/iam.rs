//! IAM policy evaluation, as far as the stack's roles need it: identity
//! policies only (inline and attached), Allow and Deny, `Action` or
//! `NotAction` and `Resource` or `NotResource` as one string or a list,
//! with the `*` and `?` wildcards. An explicit Deny wins over any Allow;
//! nothing allowed is denied. Conditions are not evaluated: a statement
//! with one is taken to apply, and results say so.

use std::fmt;

use serde_json::Value;

use super::snapshot::{Policy, Role};

/// Actions AWS only grants on `Resource: "*"`: a statement allowing only
/// these on `*` is as narrow as IAM lets it be.
pub const ONLY_ON_ANY_RESOURCE: &[&str] = &[
    "ecr:GetAuthorizationToken",
    "sts:GetCallerIdentity",
    "secretsmanager:GetRandomPassword",
    "secretsmanager:ListSecrets",
    "sqs:ListQueues",
    "sns:ListTopics",
    "logs:DescribeLogGroups",
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    // ECS Exec.
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, or everything but them (`NotAction`, `NotResource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Patterns {
    Listed(Vec<String>),
    AllBut(Vec<String>),
}

/// One statement of a policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub effect: Effect,
    pub sid: Option<String>,
    pub actions: Patterns,
    pub resources: Patterns,
    pub conditional: bool,
}

/// Where a statement lives, for results to name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementRef {
    pub role: String,
    pub policy: String,
    /// 1-based, in document order.
    pub index: usize,
    pub sid: Option<String>,
    pub conditional: bool,
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
        if self.conditional {
            write!(f, " [condition not evaluated]")?;
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
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// A field that holds a string or a list of strings.
pub fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// The statements of a policy document, whether it holds one or a list.
pub fn statement_values(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => vec![],
    }
}

fn patterns(statement: &Value, listed: &str, all_but: &str) -> Option<Patterns> {
    if statement.get(listed).is_some() {
        Some(Patterns::Listed(strings(statement.get(listed))))
    } else if statement.get(all_but).is_some() {
        Some(Patterns::AllBut(strings(statement.get(all_but))))
    } else {
        None
    }
}

/// The statements of a policy document, whether it holds one or a list.
/// A statement IAM itself would refuse (no effect, no action or resource)
/// is left out: it grants nothing.
pub fn statements(document: &Value) -> Vec<Option<Statement>> {
    statement_values(document)
        .into_iter()
        .map(|s| {
            let effect = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return None,
            };
            Some(Statement {
                effect,
                sid: s.get("Sid").and_then(Value::as_str).map(str::to_string),
                actions: patterns(s, "Action", "NotAction")?,
                resources: patterns(s, "Resource", "NotResource")?,
                conditional: s
                    .get("Condition")
                    .is_some_and(|c| c.as_object().is_none_or(|o| !o.is_empty()) && !c.is_null()),
            })
        })
        .collect()
}

/// Glob matching with `*` (any run) and `?` (one character). `star_spans`
/// says whether the `*` at a pattern index may match a `:`.
pub(super) fn glob(pattern: &[char], text: &[char], star_spans: &dyn Fn(usize) -> bool) -> bool {
    // reachable[j]: the pattern so far can consume exactly text[..j].
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for (i, &p) in pattern.iter().enumerate() {
        let mut next = vec![false; text.len() + 1];
        match p {
            '*' => {
                let spans = star_spans(i);
                for j in 0..=text.len() {
                    if reachable[j] || (j > 0 && next[j - 1] && (spans || text[j - 1] != ':')) {
                        next[j] = true;
                    }
                }
            }
            '?' => next[1..].copy_from_slice(&reachable[..text.len()]),
            c => {
                for j in 1..=text.len() {
                    next[j] = reachable[j - 1] && text[j - 1] == c;
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

/// Whether an action pattern (`sqs:*`, `*`, `ecr:Get*`) covers an action;
/// actions are case-insensitive.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = action.to_ascii_lowercase().chars().collect();
    glob(&p, &t, &|_| true)
}

/// Whether a resource pattern covers an ARN. A wildcard stays within its
/// colon-separated segment, except one that ends a segment (or the
/// pattern), which IAM lets run on across colons.
pub fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = resource.chars().collect();
    glob(&p, &t, &|i| p.get(i + 1).is_none_or(|c| *c == ':'))
}

fn covers(patterns: &Patterns, value: &str, matches: fn(&str, &str) -> bool) -> bool {
    match patterns {
        Patterns::Listed(list) => list.iter().any(|p| matches(p, value)),
        Patterns::AllBut(list) => !list.iter().any(|p| matches(p, value)),
    }
}

impl Statement {
    pub fn applies(&self, action: &str, resource: &str) -> bool {
        covers(&self.actions, action, action_matches)
            && covers(&self.resources, resource, resource_matches)
    }
}

/// Every statement of a role's policies, with where it lives.
pub fn role_statements(role: &Role) -> Vec<(StatementRef, Statement)> {
    let mut out = Vec::new();
    for Policy { name, document } in &role.policies {
        for (i, statement) in statements(document).into_iter().enumerate() {
            if let Some(statement) = statement {
                out.push((
                    StatementRef {
                        role: role.name.clone(),
                        policy: name.clone(),
                        index: i + 1,
                        sid: statement.sid.clone(),
                        conditional: statement.conditional,
                    },
                    statement,
                ));
            }
        }
    }
    out
}

/// Whether the role may do `action` on `resource` by its own policies.
pub fn decide(role: &Role, action: &str, resource: &str) -> Decision {
    let mut allowed = Vec::new();
    for (at, statement) in role_statements(role) {
        if !statement.applies(action, resource) {
            continue;
        }
        match statement.effect {
            Effect::Deny => return Decision::Denied(at),
            Effect::Allow => allowed.push(at),
        }
    }
    if allowed.is_empty() {
        Decision::NotAllowed
    } else {
        Decision::Allowed(allowed)
    }
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
    let items: Vec<&Value> = match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => vec![],
    };
    for (i, s) in items.into_iter().enumerate() {
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

/// What is too broad about an Allow statement, if anything: wildcard
/// actions, `NotAction`/`NotResource`, or any resource for an action that
/// takes a narrower one.
pub fn breadth(statement: &Statement) -> Vec<String> {
    if statement.effect != Effect::Allow {
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
        Patterns::AllBut(list) => problems.push(format!(
            "NotResource [{}] allows every other resource",
            list.join(", ")
        )),
        Patterns::Listed(list) => {
            if let Some(any) = list.iter().find(|r| is_any_resource(r)) {
                let narrowable: Vec<&String> = actions
                    .iter()
                    .filter(|a| {
                        !ONLY_ON_ANY_RESOURCE
                            .iter()
                            .any(|only| only.eq_ignore_ascii_case(a))
                    })
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
    }
    problems
}
