//! `techctl down`: delete everything tagged with the stack.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use super::{Bound, Settings, confirm, prepare, summarise};
use crate::error::CliError;
use crate::printer::Printer;
use crate::render;
use crate::stack;
use aws::secrets::RECOVERY_WINDOW_DAYS;
use engine::apply::{self, Ctx, Options, critical};
use engine::clock::AwsClock;
use engine::plan;

pub async fn exec(
    settings: &Settings,
    printer: &Arc<Printer>,
    options: Options,
) -> Result<ExitCode, CliError> {
    let options = Options {
        clock_scale: settings.clock_scale()?,
        ..options
    };
    let force_delete_secrets = options.force_delete_secrets;
    let (blueprint, aws) = prepare(settings).await?;
    let stack_name = blueprint.stack_name();
    let observed = stack::doomed(
        stack::observe(&aws, stack_name).await?,
        force_delete_secrets,
    );
    if observed.is_empty() {
        printer.text(&format!(
            "Nothing to delete: no resource in {} is tagged techctl:stack={stack_name}.",
            blueprint.region()
        ));
        printer.json(&json!({ "deleted": [] }));
        return Ok(ExitCode::SUCCESS);
    }
    let preview = plan::teardown(stack_name, blueprint.region(), observed.clone());
    printer.text(&format!(
        "{}{}",
        render::environment(&blueprint),
        render::text(&preview, printer.colour())
    ));
    if options.keep_data {
        printer.text(
            "--keep-data: the database instance is deleted with a final snapshot \
             (<instance>-final-<UTC time>) and its automated backups are kept; \
             the snapshot's master password stays in the stack secret.",
        );
    }
    if !force_delete_secrets {
        printer.text(&format!(
            "The stack secret is scheduled for deletion with a {RECOVERY_WINDOW_DAYS}-day recovery window \
             (`techctl up` restores it; --force-delete-secrets deletes it at once)."
        ));
    }
    confirm(
        settings,
        &format!(
            "This deletes {} resource(s) of stack {stack_name} in {}.",
            observed.len(),
            blueprint.region()
        ),
        stack_name,
        "to delete the stack",
    )?;
    let bound = Bound {
        path: critical::of_down(&observed, AwsClock::typical()),
        scale: options.clock_scale,
    };
    let ctx = Arc::new(Ctx::new(stack_name, options));
    let report = apply::destroy_all(
        Arc::new(aws::AwsProvider::new(aws.clone())),
        ctx,
        &observed,
        printer.clone(),
    )
    .await;
    summarise(printer, "Destroy", &report, &aws, &bound)
}
