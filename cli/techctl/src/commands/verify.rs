//! `techctl verify`: whether every flow the system needs is open, and
//! nothing else, judged from what AWS holds.

use std::process::ExitCode;

use super::{Settings, prepare};
use crate::error::CliError;
use crate::printer::{OutputFormat, Printer};
use aws::Aws;
use blueprint::Blueprint;

pub async fn exec(settings: &Settings, printer: &Printer) -> Result<ExitCode, CliError> {
    let (blueprint, aws) = prepare(settings).await?;
    check(settings, printer, &aws, &blueprint).await
}

/// Verifies the stack and prints the report; also the last step of `up`.
pub async fn check(
    settings: &Settings,
    printer: &Printer,
    aws: &Aws,
    blueprint: &Blueprint,
) -> Result<ExitCode, CliError> {
    let mut snapshot = aws::verify::read::snapshot(aws, blueprint.stack_name()).await?;
    snapshot.deploy_subject = blueprint.deploy_on_push.as_ref().map(|d| d.subject());
    let report = aws::verify::evaluate(&snapshot);
    printer.json(&report.to_json());
    printer.text(&report.to_text());
    if report.ok() {
        return Ok(ExitCode::SUCCESS);
    }
    let failed = report.failures().count();
    match settings.output {
        // The report is the one JSON document (its `ok` says the rest), so
        // no error document follows it; the exit code is the same.
        OutputFormat::Json => Ok(CliError::User(format!("{failed} flow(s) fail")).exit_code()),
        OutputFormat::Text => Err(CliError::User(format!(
            "{failed} flow(s) fail: the lines marked `blocked` name what is missing, those marked `open` what should not be there.\n  \
             `techctl up` puts back what techctl manages; a rule or policy the blueprint does not make is yours to change."
        ))),
    }
}
