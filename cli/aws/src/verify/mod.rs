//! `techctl verify`: from what AWS holds, is every flow the system needs
//! open, and nothing else?
//!
//! Emulators enforce no security group, route or IAM policy, so a stack
//! that works there may not work on AWS, and a rule added by hand goes
//! unnoticed. This module evaluates them the way AWS would, on a
//! [`Snapshot`] of plain data: it makes no AWS call (`crate::verify::read`
//! reads the snapshot), so every rule kind is tested on hand-built stacks.
//!
//! Each result is one flow: what it is, the rules, routes and statements
//! that let it through, and what is missing (a needed flow that is
//! blocked) or what should not be there (something open that nothing
//! needs).

mod deploy_role;
mod flows;
pub mod iam;
pub mod network;
pub mod read;
pub mod snapshot;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::{Value, json};

pub use flows::{ORDER_TO_PRODUCT_PATH, evaluate};
pub use snapshot::*;

/// Whether a flow is one the system needs, or one that must stay shut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    Needed,
    Forbidden,
}

/// One verified flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub flow: String,
    pub kind: FlowKind,
    /// The rules, routes and statements that let it through (for a
    /// forbidden flow: those that open it).
    pub allowed_by: Vec<String>,
    /// A needed flow: what is missing. A forbidden flow: what opens it.
    pub problems: Vec<String>,
}

impl Flow {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// `ok`, `blocked` (a needed flow that cannot pass) or `open` (a flow
    /// nothing needs that can pass).
    pub fn status(&self) -> &'static str {
        match (self.ok(), self.kind) {
            (true, _) => "ok",
            (false, FlowKind::Needed) => "blocked",
            (false, FlowKind::Forbidden) => "open",
        }
    }

    /// One line: the flow, what allows it, and the verdict.
    pub fn line(&self) -> String {
        let allowed = if self.allowed_by.is_empty() {
            "nothing".to_string()
        } else {
            self.allowed_by.join("; ")
        };
        let verdict = if self.ok() {
            "ok".to_string()
        } else {
            format!("{}: {}", self.status(), self.problems.join("; "))
        };
        format!("{} | allowed by: {allowed} | {verdict}", self.flow)
    }
}

/// Everything verify found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub stack: String,
    pub region: String,
    /// Each service and where its facts came from.
    pub services: Vec<(String, ServiceSource)>,
    pub flows: Vec<Flow>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.flows.iter().all(Flow::ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter().filter(|f| !f.ok())
    }

    /// The one JSON document of `--output json`.
    pub fn to_json(&self) -> Value {
        json!({
            "stack": self.stack,
            "region": self.region,
            "ok": self.ok(),
            "services": self.services.iter().map(|(name, source)| json!({
                "name": name,
                "source": source,
            })).collect::<Vec<_>>(),
            "flows": self.flows.iter().map(|f| json!({
                "flow": f.flow,
                "kind": f.kind,
                "allowed_by": f.allowed_by,
                "status": f.status(),
                "ok": f.ok(),
                "problems": f.problems,
            })).collect::<Vec<_>>(),
        })
    }

    /// The text of `--output text`: one line per flow, then a summary.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for f in &self.flows {
            text.push_str(&f.line());
            text.push('\n');
        }
        let failed = self.failures().count();
        let deployed: Vec<&str> = self
            .services
            .iter()
            .filter(|(_, s)| *s == ServiceSource::EcsService)
            .map(|(n, _)| n.as_str())
            .collect();
        text.push_str(&format!(
            "\n{} of {} flows pass in stack {} ({}); services read from {}.\n",
            self.flows.len() - failed,
            self.flows.len(),
            self.stack,
            self.region,
            if deployed.is_empty() {
                "the stack outputs (none deployed yet)".to_string()
            } else if deployed.len() == self.services.len() {
                "their ECS services".to_string()
            } else {
                format!(
                    "their ECS services where deployed ({}), else the stack outputs",
                    deployed.join(", ")
                )
            }
        ));
        text
    }
}

/// What a check found so far: what lets the flow through, and what is
/// missing. Repeated steps (the same NAT route for several APIs) are kept
/// once.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub allowed: Vec<String>,
    pub blocked: Vec<String>,
}

impl Trace {
    pub fn allow(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.allowed.contains(&what) {
            self.allowed.push(what);
        }
    }

    pub fn block(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.blocked.contains(&what) {
            self.blocked.push(what);
        }
    }

    pub fn needed(self, flow: impl Into<String>) -> Flow {
        Flow {
            flow: flow.into(),
            kind: FlowKind::Needed,
            allowed_by: self.allowed,
            problems: self.blocked,
        }
    }

    pub fn forbidden(self, flow: impl Into<String>) -> Flow {
        Flow {
            flow: flow.into(),
            kind: FlowKind::Forbidden,
            allowed_by: self.allowed,
            problems: self.blocked,
        }
    }
}
