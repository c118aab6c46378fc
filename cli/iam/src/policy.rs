//! Policy documents, parsed once: statements with their effect, actions,
//! resources, principals and conditions. A document AWS would refuse, or
//! one using what this crate does not evaluate, is an error, never a
//! policy that quietly grants more or less than AWS would.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::condition::Condition;

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

impl Patterns {
    pub(crate) fn covers(&self, value: &str, matches: fn(&str, &str) -> bool) -> bool {
        match self {
            Patterns::Listed(list) => list.iter().any(|p| matches(p, value)),
            Patterns::AllBut(list) => !list.iter().any(|p| matches(p, value)),
        }
    }
}

/// Who a statement of a trust policy names: `"*"` (anyone), principals
/// by kind (`AWS`, `Service`, `Federated`), or everyone but them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principals {
    Any,
    Listed(BTreeMap<String, Vec<String>>),
    AllBut(BTreeMap<String, Vec<String>>),
}

/// One statement of a policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// 1-based, in document order.
    pub position: usize,
    pub effect: Effect,
    pub sid: Option<String>,
    pub actions: Patterns,
    /// `None` in a trust policy, which names no resource.
    pub resources: Option<Patterns>,
    /// `None` in an identity policy, which names no principal.
    pub principals: Option<Principals>,
    pub conditions: Vec<Condition>,
}

/// Where a statement lives, for a decision to name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementRef {
    pub policy: String,
    /// 1-based, in document order.
    pub index: usize,
    pub sid: Option<String>,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {} statement {}", self.policy, self.index)?;
        if let Some(sid) = &self.sid {
            write!(f, " ({sid})")?;
        }
        Ok(())
    }
}

/// A named policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub name: String,
    pub statements: Vec<Statement>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {policy}: {problem}")]
    Document { policy: String, problem: String },
    #[error("policy {policy} statement {index}: {problem}")]
    Statement {
        policy: String,
        index: usize,
        problem: String,
    },
}

/// A field that holds a string or a list of strings.
pub(crate) fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Value::Bool(b) => Some(vec![b.to_string()]),
        Value::Number(n) => Some(vec![n.to_string()]),
        _ => None,
    }
}

fn patterns(s: &Value, listed: &str, all_but: &str) -> Result<Option<Patterns>, String> {
    match (s.get(listed), s.get(all_but)) {
        (Some(_), Some(_)) => Err(format!("both {listed} and {all_but}")),
        (Some(v), None) => strings(v)
            .map(|l| Some(Patterns::Listed(l)))
            .ok_or_else(|| format!("{listed} is not a string or a list of strings")),
        (None, Some(v)) => strings(v)
            .map(|l| Some(Patterns::AllBut(l)))
            .ok_or_else(|| format!("{all_but} is not a string or a list of strings")),
        (None, None) => Ok(None),
    }
}

fn principal_map(value: &Value) -> Result<Principals, String> {
    match value {
        Value::String(s) if s == "*" => Ok(Principals::Any),
        Value::Object(map) => map
            .iter()
            .map(|(kind, v)| {
                strings(v)
                    .map(|l| (kind.clone(), l))
                    .ok_or_else(|| format!("principal {kind} is not a string or a list"))
            })
            .collect::<Result<_, _>>()
            .map(Principals::Listed),
        other => Err(format!("principal {other} is neither \"*\" nor an object")),
    }
}

impl Statement {
    /// Parses the statement at `position` (1-based) of a document.
    pub fn parse(position: usize, s: &Value) -> Result<Statement, String> {
        statement(position, s)
    }
}

fn statement(position: usize, s: &Value) -> Result<Statement, String> {
    let effect = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        other => return Err(format!("Effect {other:?} is neither Allow nor Deny")),
    };
    let actions = patterns(s, "Action", "NotAction")?.ok_or("no Action or NotAction")?;
    let resources = patterns(s, "Resource", "NotResource")?;
    let principals = match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(_), Some(_)) => return Err("both Principal and NotPrincipal".into()),
        (Some(p), None) => Some(principal_map(p)?),
        (None, Some(p)) => Some(match principal_map(p)? {
            Principals::Listed(map) => Principals::AllBut(map),
            _ => return Err("NotPrincipal \"*\" names nobody".into()),
        }),
        (None, None) => None,
    };
    if resources.is_none() && principals.is_none() {
        return Err("no Resource or NotResource".into());
    }
    let conditions = match s.get("Condition") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(block)) => Condition::parse_block(block)?,
        Some(other) => return Err(format!("Condition {other} is not an object")),
    };
    Ok(Statement {
        position,
        effect,
        sid: s.get("Sid").and_then(Value::as_str).map(str::to_string),
        actions,
        resources,
        principals,
        conditions,
    })
}

/// A policy document as IAM answers it: URL-encoded (`%7B%22Version…`,
/// `+` for a space) in its query API, plain where it is already JSON.
pub fn decode_document(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (hex, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A policy document as IAM answers it, read as JSON (`Null` when it is
/// not JSON).
pub fn document_json(text: &str) -> Value {
    serde_json::from_str(&decode_document(text)).unwrap_or(Value::Null)
}

/// The statements of a policy document, whether it holds one or a list.
pub fn statement_values(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => vec![],
    }
}

/// A field that holds a string or a list of strings, as strings; nothing
/// for anything else.
pub fn strings_of(value: Option<&Value>) -> Vec<String> {
    value.and_then(strings).unwrap_or_default()
}

impl Policy {
    /// Parses a policy document (`{"Version": …, "Statement": […]}`, one
    /// statement or a list).
    pub fn parse(name: &str, document: &Value) -> Result<Policy, PolicyError> {
        let (policy, mut problems) = Policy::parse_lenient(name, document);
        match problems.is_empty() {
            true => Ok(policy),
            false => Err(problems.remove(0)),
        }
    }

    /// The statements that parse, and what is wrong with the others: for
    /// reading what an account holds, where one statement this crate does
    /// not evaluate must not hide the rest.
    pub fn parse_lenient(name: &str, document: &Value) -> (Policy, Vec<PolicyError>) {
        let mut problems = Vec::new();
        if !matches!(
            document.get("Statement"),
            Some(Value::Array(_) | Value::Object(_))
        ) {
            problems.push(PolicyError::Document {
                policy: name.to_string(),
                problem: "no Statement".into(),
            });
        }
        let statements = statement_values(document)
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| match statement(i + 1, s) {
                Ok(statement) => Some(statement),
                Err(problem) => {
                    problems.push(PolicyError::Statement {
                        policy: name.to_string(),
                        index: i + 1,
                        problem,
                    });
                    None
                }
            })
            .collect();
        (
            Policy {
                name: name.to_string(),
                statements,
            },
            problems,
        )
    }

    /// Parses a document held as text, as IAM answers it (URL-decoded).
    pub fn parse_text(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let document: Value = serde_json::from_str(text).map_err(|e| PolicyError::Document {
            policy: name.to_string(),
            problem: format!("not JSON: {e}"),
        })?;
        Policy::parse(name, &document)
    }

    /// Every statement, with where it lives.
    pub fn statements(&self) -> impl Iterator<Item = (StatementRef, &Statement)> {
        self.statements.iter().map(|s| {
            (
                StatementRef {
                    policy: self.name.clone(),
                    index: s.position,
                    sid: s.sid.clone(),
                },
                s,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_statement_or_a_list_and_strings_or_lists() {
        let one = Policy::parse(
            "p",
            &json!({"Statement": {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}}),
        )
        .unwrap();
        assert_eq!(one.statements.len(), 1);
        assert_eq!(
            one.statements[0].actions,
            Patterns::Listed(vec!["sqs:*".into()])
        );
        let trust = Policy::parse(
            "trust",
            &json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"Service": ["ecs-tasks.amazonaws.com"]}}]}),
        )
        .unwrap();
        assert!(trust.statements[0].resources.is_none());
    }

    #[test]
    fn what_aws_refuses_is_an_error_naming_the_statement() {
        let refused = |doc: Value| Policy::parse("p", &doc).unwrap_err().to_string();
        assert_eq!(
            refused(json!({"Statement": [{"Effect": "Permit", "Action": "*", "Resource": "*"}]})),
            "policy p statement 1: Effect Some(\"Permit\") is neither Allow nor Deny"
        );
        assert!(
            refused(json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}))
                .contains("no Action")
        );
        assert!(
            refused(json!({"Statement": [{"Effect": "Allow", "Action": "*"}]}))
                .contains("no Resource")
        );
        assert!(refused(json!({})).contains("no Statement"));
    }
}
