//! The `Condition` element: operators, `…IfExists`, the set operators and
//! policy variables, as AWS's condition operator reference describes them.
//!
//! Within a block every operator must hold, within an operator every key,
//! and a key holds when the request's value matches any of the listed
//! values. A key the request does not carry fails a matching operator and
//! satisfies a negated one (`StringNotEquals`, `ArnNotLike`, …), except
//! under `…IfExists` (true) and `Null` (which asks exactly that).

use serde_json::{Map, Value};

use crate::evaluate::Context;
use crate::pattern::{arn_like, like};
use crate::policy::strings;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    ArnEquals,
    ArnLike,
    Bool,
    Null,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    AnyValue,
    AllValues,
}

/// A condition operator: `StringEquals`, `ForAnyValue:StringLike`,
/// `ArnNotLikeIfExists`, …
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// As written in the policy.
    pub name: String,
    base: Base,
    negated: bool,
    if_exists: bool,
    set: Option<Set>,
}

impl Operator {
    pub fn parse(name: &str) -> Result<Operator, String> {
        let (set, rest) = match name.split_once(':') {
            Some(("ForAnyValue", rest)) => (Some(Set::AnyValue), rest),
            Some(("ForAllValues", rest)) => (Some(Set::AllValues), rest),
            Some((other, _)) => return Err(format!("unknown set operator {other}")),
            None => (None, name),
        };
        let (rest, if_exists) = match rest.strip_suffix("IfExists") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let (base, negated) = match rest {
            "StringEquals" => (Base::StringEquals, false),
            "StringNotEquals" => (Base::StringEquals, true),
            "StringEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, true),
            "StringLike" => (Base::StringLike, false),
            "StringNotLike" => (Base::StringLike, true),
            "ArnEquals" => (Base::ArnEquals, false),
            "ArnNotEquals" => (Base::ArnEquals, true),
            "ArnLike" => (Base::ArnLike, false),
            "ArnNotLike" => (Base::ArnLike, true),
            "Bool" => (Base::Bool, false),
            "Null" if !if_exists && set.is_none() => (Base::Null, false),
            "NumericEquals" => (Base::NumericEquals, false),
            "NumericNotEquals" => (Base::NumericEquals, true),
            "NumericLessThan" => (Base::NumericLessThan, false),
            "NumericLessThanEquals" => (Base::NumericLessThanEquals, false),
            "NumericGreaterThan" => (Base::NumericGreaterThan, false),
            "NumericGreaterThanEquals" => (Base::NumericGreaterThanEquals, false),
            _ => return Err(format!("condition operator {name} is not evaluated here")),
        };
        Ok(Operator {
            name: name.to_string(),
            base,
            negated,
            if_exists,
            set,
        })
    }

    /// Whether one request value matches one policy value, before negation.
    fn matches(&self, policy: &str, request: &str) -> bool {
        let number = |s: &str| s.trim().parse::<f64>().ok();
        let compare = |ok: fn(f64, f64) -> bool| match (number(request), number(policy)) {
            (Some(r), Some(p)) => ok(r, p),
            _ => false,
        };
        match self.base {
            Base::StringEquals | Base::ArnEquals => policy == request,
            Base::StringEqualsIgnoreCase => policy.eq_ignore_ascii_case(request),
            Base::StringLike => like(policy, request),
            Base::ArnLike => arn_like(policy, request),
            Base::Bool => policy.eq_ignore_ascii_case(request),
            Base::NumericEquals => compare(|r, p| r == p),
            Base::NumericLessThan => compare(|r, p| r < p),
            Base::NumericLessThanEquals => compare(|r, p| r <= p),
            Base::NumericGreaterThan => compare(|r, p| r > p),
            Base::NumericGreaterThanEquals => compare(|r, p| r >= p),
            Base::Null => false,
        }
    }
}

/// One key of one operator, with the values it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub operator: Operator,
    /// As written; keys are compared case-insensitively.
    pub key: String,
    pub values: Vec<String>,
}

impl Condition {
    /// The conditions of a statement's `Condition` block.
    pub(crate) fn parse_block(block: &Map<String, Value>) -> Result<Vec<Condition>, String> {
        let mut out = Vec::new();
        for (operator, keys) in block {
            let parsed = Operator::parse(operator)?;
            let Value::Object(keys) = keys else {
                return Err(format!("Condition {operator} is not an object of keys"));
            };
            for (key, values) in keys {
                let values = strings(values)
                    .ok_or_else(|| format!("Condition {operator} {key}: values are not strings"))?;
                out.push(Condition {
                    operator: parsed.clone(),
                    key: key.clone(),
                    values,
                });
            }
        }
        Ok(out)
    }

    /// Whether one request value satisfies the condition: matches a
    /// listed value, or for a negated operator matches none.
    fn satisfied_by(&self, request: &str, context: &Context) -> bool {
        let any = self
            .values
            .iter()
            .any(|policy| match substitute(policy, context) {
                Some(policy) => self.operator.matches(&policy, request),
                // A variable the request does not carry matches nothing.
                None => false,
            });
        any != self.operator.negated
    }

    /// Whether the request's context satisfies the condition.
    pub fn holds(&self, context: &Context) -> bool {
        let present = context.get(&self.key).filter(|v| !v.is_empty());
        if self.operator.base == Base::Null {
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == present.is_none());
        }
        let Some(values) = present else {
            return match self.operator.set {
                _ if self.operator.if_exists => true,
                Some(Set::AllValues) => true,
                Some(Set::AnyValue) => false,
                None => self.operator.negated,
            };
        };
        match (self.operator.set, self.operator.negated) {
            (Some(Set::AllValues), _) | (None, true) => {
                values.iter().all(|v| self.satisfied_by(v, context))
            }
            (Some(Set::AnyValue), _) | (None, false) => {
                values.iter().any(|v| self.satisfied_by(v, context))
            }
        }
    }
}

/// A policy value with its variables (`${aws:PrincipalTag/team}`) put in
/// from the request; `None` when the request lacks one. `${*}`, `${?}` and
/// `${$}` are the literal characters.
fn substitute(value: &str, context: &Context) -> Option<String> {
    if !value.contains("${") {
        return Some(value.to_string());
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let name = &after[..end];
        match name {
            "*" | "?" | "$" => out.push_str(name),
            key => out.push_str(context.get(key)?.first()?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}
