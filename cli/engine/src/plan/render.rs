//! The plan for people: one line per resource that changes, the fields that
//! differ beneath it, and a closing count, the way Terraform shows it.

use std::fmt::Write;

use console::Style;

use super::{Action, Plan};

pub fn text(plan: &Plan, colour: bool) -> String {
    let paint = |style: Style, s: &str| {
        if colour {
            style.apply_to(s).to_string()
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "Stack {} in {}:", plan.stack, plan.region);
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "\nNo changes: AWS matches the blueprint ({} resources).",
            plan.changes.len()
        );
        return out;
    }
    let width = plan
        .changes
        .iter()
        .map(|c| c.id.as_str().len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out);
    for change in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        let (sign, style) = match change.action {
            Action::Create => ("  +", Style::new().green()),
            Action::Update => ("  ~", Style::new().yellow()),
            Action::Replace => ("-/+", Style::new().magenta()),
            Action::Delete => ("  -", Style::new().red()),
            Action::NoOp => ("   ", Style::new()),
        };
        let mut line = format!(
            "{} {:<8} {:<width$}  {}",
            sign,
            change.action.verb(),
            change.id,
            change.kind
        );
        if let Some(physical) = &change.physical_id {
            let _ = write!(line, " ({physical})");
        }
        let _ = writeln!(out, "{}", paint(style, &line));
        if let Some(reason) = &change.reason {
            let _ = writeln!(out, "        because {reason}");
        }
        for field in &change.fields {
            let show = |v: &Option<serde_json::Value>| match v {
                Some(v) => v.to_string(),
                None => "(none)".into(),
            };
            let _ = writeln!(
                out,
                "        {}: {} → {}{}",
                field.field,
                show(&field.before),
                show(&field.after),
                if field.forces_replacement {
                    paint(Style::new().magenta(), " (forces replacement)")
                } else {
                    String::new()
                }
            );
        }
    }
    let c = plan.counts();
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        c.create, c.update, c.replace, c.delete, c.unchanged
    );
    out
}

/// The longest chain of waits, as a lower bound on `up` against real AWS.
pub fn waits(chain: &super::waits::WaitChain) -> String {
    if chain.waits.is_empty() {
        return String::new();
    }
    let steps: Vec<String> = chain.waits.iter().map(|id| id.to_string()).collect();
    format!(
        "\nLongest chain of dependent waits: {} ({} wait(s), about {} min on AWS) among {} resources.\n",
        steps.join(" → "),
        chain.waits.len(),
        chain.typical_minutes,
        chain.resources
    )
}
