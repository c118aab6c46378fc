//! `techctl plan`: what `up` would do, changing nothing.

use std::process::ExitCode;

use serde_json::json;

use super::{Settings, prepare};
use crate::error::{CliError, EXIT_CHANGES};
use crate::printer::Printer;
use crate::render;
use crate::stack;
use engine::apply::critical;
use engine::clock::AwsClock;
use engine::plan::cost;

pub async fn exec(
    settings: &Settings,
    printer: &Printer,
    detailed_exitcode: bool,
) -> Result<ExitCode, CliError> {
    let (blueprint, aws) = prepare(settings).await?;
    let plan = stack::plan(&aws, &blueprint).await?;
    let cost = cost::estimate(&blueprint);
    let path = critical::of_plan(&plan, AwsClock::typical());
    printer.text(&format!(
        "{}{}{}{}",
        render::environment(&blueprint),
        render::text(&plan, printer.colour()),
        render::cost(&cost, blueprint.region()),
        render::critical_path(&path),
    ));
    printer.json(&json!({
        "plan": plan,
        "environment": blueprint.environment,
        "stack": blueprint.stack_name(),
        "counts": plan.counts(),
        "aws_calls": aws.calls.len(),
        "aws_calls_by_operation": aws.calls.by_operation(),
        "cost": cost,
        "critical_path": path,
    }));
    Ok(if detailed_exitcode && plan.has_changes() {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}
