//! `techctl status`: what exists, whether it matches the blueprint, and
//! the stack outputs with secrets masked.

use std::collections::HashMap;
use std::fmt::Write;
use std::process::ExitCode;

use console::Style;
use serde_json::json;

use super::{Settings, prepare};
use crate::error::CliError;
use crate::printer::Printer;
use crate::stack;
use crate::table::Table;
use engine::plan::{Action, Observed, Spec};

pub async fn exec(settings: &Settings, printer: &Printer) -> Result<ExitCode, CliError> {
    let (blueprint, aws) = prepare(settings).await?;
    let plan = stack::plan(&aws, &blueprint).await?;
    let outputs = stack::outputs(&aws, blueprint.stack_name()).await?;
    let states: HashMap<&str, Option<&str>> = plan
        .observed
        .iter()
        .map(|o| (o.physical_id.as_str(), o.state.as_deref()))
        .collect();

    let rows: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|c| {
            let state = match (&c.physical_id, c.action) {
                (None, _) => "missing",
                (Some(p), _) => states
                    .get(p.as_str())
                    .copied()
                    .flatten()
                    .unwrap_or("present"),
            };
            let drift = match c.action {
                Action::NoOp => "in sync",
                Action::Create => "to create",
                Action::Update => "differs: update",
                Action::Replace => "differs: replace",
                Action::Delete => "not in blueprint: delete",
            };
            json!({
                "id": c.id, "kind": c.kind, "physical_id": c.physical_id,
                "state": state, "blueprint": drift,
            })
        })
        .collect();
    let in_sync = !plan.has_changes();
    let alarms = dead_letter_alarms(&plan.observed);
    printer.json(&json!({
        "stack": plan.stack, "region": plan.region, "in_sync": in_sync,
        "resources": rows, "outputs": outputs,
        "dead_letter_alarms": alarms,
        "alarms_raised": alarms.iter().filter(|a| a.raised()).count(),
    }));

    let existing = plan
        .changes
        .iter()
        .filter(|c| c.physical_id.is_some())
        .count();
    let mut text = format!(
        "Stack {} in {}: {existing} resource(s) exist; {}\n\n",
        plan.stack,
        plan.region,
        if in_sync {
            printer.paint(Style::new().green(), "in sync with the blueprint.")
        } else {
            printer.paint(
                Style::new().yellow(),
                "differs from the blueprint (`techctl plan` shows how).",
            )
        }
    );
    let mut table = Table::new(&["RESOURCE", "KIND", "AWS ID", "STATE", "BLUEPRINT"]);
    for r in &rows {
        let cell = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        table.row([
            cell("id"),
            cell("kind"),
            cell("physical_id"),
            cell("state"),
            cell("blueprint"),
        ]);
    }
    text.push_str(&table.render());
    text.push_str(&alarm_text(&alarms, printer));
    match &outputs {
        Some(map) => {
            text.push_str("\nOutputs (stack secret):\n");
            for (k, v) in map {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                text.push_str(&format!("  {k} = {v}\n"));
            }
        }
        None => text.push_str(
            "\nNo outputs: the stack secret does not exist or is scheduled for deletion.\n",
        ),
    }
    printer.text(&text);
    Ok(ExitCode::SUCCESS)
}

/// One dead-letter queue's alarm as CloudWatch holds it.
#[derive(serde::Serialize)]
struct DeadLetterAlarm {
    service: String,
    alarm: String,
    queue: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    state: String,
}

impl DeadLetterAlarm {
    fn raised(&self) -> bool {
        self.state == "ALARM"
    }
}

fn dead_letter_alarms(observed: &[Observed]) -> Vec<DeadLetterAlarm> {
    let mut alarms: Vec<DeadLetterAlarm> = observed
        .iter()
        .filter_map(|o| match &o.spec {
            Spec::Alarm {
                name, queue_name, ..
            } => Some(DeadLetterAlarm {
                service: o
                    .id
                    .as_str()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                alarm: name.clone(),
                queue: queue_name.clone(),
                state: o.state.clone().unwrap_or_else(|| "unknown".into()),
            }),
            _ => None,
        })
        .collect();
    alarms.sort_by(|a, b| a.service.cmp(&b.service));
    alarms
}

/// The alarms, a raised one in red with what to do about it.
fn alarm_text(alarms: &[DeadLetterAlarm], printer: &Printer) -> String {
    if alarms.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nDead-letter alarms:\n");
    for alarm in alarms {
        let state = match alarm.state.as_str() {
            "ALARM" => printer.paint(Style::new().red().bold(), "ALARM"),
            "OK" => printer.paint(Style::new().green(), "OK"),
            // A new alarm, before CloudWatch has evaluated it.
            "INSUFFICIENT_DATA" => "no data yet".to_string(),
            other => other.to_string(),
        };
        let _ = write!(text, "  {:<12} {state}", alarm.service);
        if alarm.raised() {
            let _ = write!(
                text,
                ": events are parked in {}; `techctl events list {}` shows them and why",
                alarm.queue, alarm.service
            );
        }
        text.push('\n');
    }
    text
}
