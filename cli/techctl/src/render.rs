//! The engine's data for people: the plan (one line per resource that
//! changes, the fields that differ beneath it, a closing count, the way
//! Terraform shows it), the longest chain of waits, and the cost estimate.

use std::fmt::Write;

use console::Style;

use engine::apply::Report;
use engine::apply::critical::CriticalPath;
use engine::plan::cost::Estimate;
use engine::plan::{Action, Plan};

use crate::table::{Align, Table};

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
    let changes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .collect();
    let mut table = Table::headless();
    for change in &changes {
        let sign = match change.action {
            Action::Create => "  +",
            Action::Update => "  ~",
            Action::Replace => "-/+",
            Action::Delete => "  -",
            Action::NoOp => "   ",
        };
        let mut kind = change.kind.to_string();
        if let Some(physical) = &change.physical_id {
            let _ = write!(kind, " ({physical})");
        }
        table.row([
            format!("{sign} {}", change.action.verb()),
            change.id.to_string(),
            kind,
        ]);
    }
    let _ = writeln!(out);
    for (change, line) in changes.iter().zip(table.lines()) {
        let style = match change.action {
            Action::Create => Style::new().green(),
            Action::Update => Style::new().yellow(),
            Action::Replace => Style::new().magenta(),
            Action::Delete => Style::new().red(),
            Action::NoOp => Style::new(),
        };
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

/// Which environment the plan is for and which values it set, before the
/// plan: the stack name says where the plan goes, the list why it differs
/// from the base.
pub fn environment(blueprint: &blueprint::Blueprint) -> String {
    let Some(environment) = &blueprint.environment else {
        return String::new();
    };
    let mut out = format!(
        "Environment {}: stack {}",
        environment.name,
        blueprint.stack_name()
    );
    if environment.overrides.is_empty() {
        out.push_str(", every value from the base\n\n");
        return out;
    }
    out.push_str(&format!(
        "; from [env.{}], over the base:\n",
        environment.name
    ));
    for o in &environment.overrides {
        out.push_str(&format!("  {} (line {})\n", o.field, o.line));
    }
    out.push('\n');
    out
}

/// The critical path, as the least time applying the plan takes on AWS.
pub fn critical_path(path: &CriticalPath) -> String {
    if path.chain.is_empty() {
        return String::new();
    }
    let steps: Vec<String> = path
        .chain
        .iter()
        .map(|l| format!("{} ({})", l.id, minutes(l.seconds as f64)))
        .collect();
    format!(
        "\nCritical path: {}: about {} on AWS, however many of the {} resources run at once.\n",
        steps.join(" → "),
        minutes(path.seconds as f64),
        path.resources
    )
}

/// How the wall time of an apply compares with its critical path.
pub fn against_bound(report: &Report, bound: &crate::commands::Bound, polls: u32) -> String {
    let Some(ratio) = bound.ratio(report.elapsed_seconds) else {
        return String::new();
    };
    let clock = if bound.scale == 1.0 {
        String::new()
    } else {
        format!(" on a clock {:.4} times AWS's", bound.scale)
    };
    format!(
        "\nTook {} against a critical path of {}{clock}: {ratio:.2}×; {polls} of the calls polled {} wait(s).",
        minutes(report.elapsed_seconds),
        minutes(bound.seconds()),
        report.waits.len()
    )
}

/// `9 min 12 s`, `45 s`, `1.3 s`.
fn minutes(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if seconds < 60.0 {
        format!("{seconds:.0} s")
    } else {
        let whole = seconds.round() as u64;
        match whole % 60 {
            0 => format!("{} min", whole / 60),
            s => format!("{} min {s} s", whole / 60),
        }
    }
}

/// The estimate as a table, with where its prices come from.
pub fn cost(estimate: &Estimate, stack_region: &str) -> String {
    let mut out = format!(
        "\nEstimated monthly cost while running (prices for {} as of {}):\n",
        estimate.prices_region, estimate.prices_as_of
    );
    let mut table = Table::headless().indent(2).align(1, Align::Right);
    for line in &estimate.lines {
        let amount = line
            .monthly_usd
            .map_or_else(|| "?".to_string(), |v| format!("${v:.2}"));
        table.row([line.item.clone(), amount, line.detail.clone()]);
    }
    table.row([
        "Total".to_string(),
        format!("${:.2}", estimate.monthly_usd),
        "a month, before usage".to_string(),
    ]);
    out.push_str(&table.render());
    let usage: Vec<String> = estimate
        .usage_prices
        .iter()
        .map(|(what, price)| format!("{} ${price:.2}", what.replace('_', " ")))
        .collect();
    let _ = writeln!(out, "  Plus usage: {}.", usage.join(", "));
    if stack_region != estimate.prices_region {
        let _ = writeln!(
            out,
            "  The stack is in {stack_region}; prices there differ from {}'s.",
            estimate.prices_region
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use engine::plan::expand::{ids, tags};
    use engine::plan::{LogicalId, Observed, Resource, Spec, compute};

    use super::*;

    fn vpc(cidr: &str) -> Spec {
        Spec::Vpc {
            cidr: cidr.into(),
            dns_support: true,
            dns_hostnames: true,
        }
    }

    fn subnet(cidr: &str) -> Spec {
        Spec::Subnet {
            vpc: ids::vpc(),
            cidr: cidr.into(),
            availability_zone: "us-east-1a".into(),
        }
    }

    fn seen(id: LogicalId, physical: &str, spec: Spec) -> Observed {
        Observed {
            tags: tags("s", &id),
            id,
            physical_id: physical.into(),
            spec,
            state: None,
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn a_replacement_shows_what_forces_it_and_what_goes_with_it() {
        let desired = vec![
            Resource::new(ids::vpc(), vpc("10.0.0.0/16")),
            Resource::new(ids::subnet("private", "a"), subnet("10.0.10.0/24")),
        ];
        let observed = vec![
            seen(ids::vpc(), "vpc-1", vpc("10.9.0.0/16")),
            seen(
                ids::subnet("private", "a"),
                "subnet-1",
                subnet("10.0.10.0/24"),
            ),
        ];
        let plan = compute("s", "us-east-1", desired, observed);
        let text = text(&plan, false);
        assert!(text.contains("-/+ replace  network/vpc"), "{text}");
        assert!(
            text.contains("cidr: \"10.9.0.0/16\" → \"10.0.0.0/16\" (forces replacement)"),
            "{text}"
        );
        assert!(
            text.contains("because it lives in network/vpc, which is replaced"),
            "{text}"
        );
        assert!(
            text.contains(
                "Plan: 0 to create, 0 to update, 2 to replace, 0 to delete, 0 unchanged."
            ),
            "{text}"
        );
    }

    #[test]
    fn the_cost_table_says_where_its_prices_come_from() {
        let path = shipped_blueprint();
        let blueprint = blueprint::load(&path).expect("the shipped blueprint loads");
        let estimate = engine::plan::cost::estimate(&blueprint);
        let text = cost(&estimate, "sa-east-1");
        assert!(text.contains("prices for us-east-1 as of"), "{text}");
        assert!(text.contains("The stack is in sa-east-1"), "{text}");
        let total = text.lines().find(|l| l.contains("Total")).unwrap();
        assert!(total.ends_with("a month, before usage"), "{total}");
        // Amounts end in one column.
        let ends: std::collections::BTreeSet<usize> = text
            .lines()
            .filter(|l| l.contains('$') && !l.contains("Plus usage"))
            .map(|l| l.find('$').unwrap() + l[l.find('$').unwrap()..].find(' ').unwrap_or(0))
            .collect();
        assert_eq!(ends.len(), 1, "{text}");
    }

    fn shipped_blueprint() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/techchallenge.toml")
    }
}
