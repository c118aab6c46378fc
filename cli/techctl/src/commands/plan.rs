//! `techctl plan`: what `up` would do, changing nothing.

use std::process::ExitCode;

use serde_json::json;

use super::{Settings, prepare};
use crate::error::{CliError, EXIT_CHANGES};
use crate::printer::Printer;
use crate::render;
use crate::stack;
use engine::plan::{cost, waits};

pub async fn exec(
    settings: &Settings,
    printer: &Printer,
    detailed_exitcode: bool,
) -> Result<ExitCode, CliError> {
    let (blueprint, aws) = prepare(settings).await?;
    let plan = stack::plan(&aws, &blueprint).await?;
    let cost = cost::estimate(&blueprint);
    let waits = waits::longest(&plan.desired);
    printer.text(&format!(
        "{}{}{}",
        render::text(&plan, printer.colour()),
        render::cost(&cost, blueprint.region()),
        render::waits(&waits),
    ));
    printer.json(&json!({
        "plan": plan,
        "counts": plan.counts(),
        "aws_calls": aws.calls.len(),
        "cost": cost,
        "longest_wait_chain": waits,
    }));
    Ok(if detailed_exitcode && plan.has_changes() {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}
