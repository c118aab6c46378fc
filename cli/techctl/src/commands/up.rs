//! `techctl up`: make AWS match the blueprint.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use super::{Bound, Settings, confirm, deploy, prepare, summarise};
use crate::cli::DeployArgs;
use crate::error::CliError;
use crate::printer::Printer;
use crate::render;
use crate::stack;
use engine::apply::{self, Ctx, Options, critical};
use engine::clock::AwsClock;

pub async fn exec(
    settings: &Settings,
    printer: &Arc<Printer>,
    parallelism: usize,
    then_deploy: Option<DeployArgs>,
) -> Result<ExitCode, CliError> {
    let provisioned = provision(settings, printer, parallelism).await?;
    if provisioned != ExitCode::SUCCESS {
        return Ok(provisioned);
    }
    let (blueprint, aws) = prepare(settings).await?;
    if let Some(how) = then_deploy {
        let services = deploy::every_service(&blueprint);
        let options = deploy::options(services, None, false, how, settings.clock_scale()?);
        printer.text("\nDeploying every service (skip with --no-deploy)…");
        crate::deploy::run(&aws, &blueprint, &options, printer).await?;
    }
    // Moto and the plan alone prove no flow: check what AWS now holds.
    printer.text("\nVerifying every flow the system needs, and that nothing else is open…");
    super::verify::check(settings, printer, &aws, &blueprint).await
}

async fn provision(
    settings: &Settings,
    printer: &Arc<Printer>,
    parallelism: usize,
) -> Result<ExitCode, CliError> {
    let clock_scale = settings.clock_scale()?;
    let (blueprint, aws) = prepare(settings).await?;
    let plan = stack::plan(&aws, &blueprint).await?;
    printer.text(&format!(
        "{}{}",
        render::environment(&blueprint),
        render::text(&plan, printer.colour())
    ));
    printer.json(&json!({ "plan": plan }));
    if !plan.has_changes() {
        printer.text(&format!(
            "Nothing to do: {} AWS calls, none changing.",
            aws.calls.len()
        ));
        printer.json(&json!({
            "summary": null,
            "total_aws_calls": aws.calls.len(),
            "total_mutating_calls": aws.calls.mutating(),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    if plan.destroys_anything() {
        let c = plan.counts();
        confirm(
            settings,
            &format!(
                "This plan replaces {} and deletes {} resource(s) of stack {}.",
                c.replace, c.delete, plan.stack
            ),
            "yes",
            "to allow it",
        )?;
    }
    let options = Options {
        parallelism,
        clock_scale,
        ..Options::default()
    };
    let bound = Bound {
        path: critical::of_plan(&plan, AwsClock::typical()),
        scale: options.clock_scale,
    };
    let ctx = Arc::new(Ctx::new(blueprint.stack_name(), options));
    let report = apply::apply(
        Arc::new(aws::AwsProvider::new(aws.clone())),
        ctx,
        &plan,
        printer.clone(),
    )
    .await;
    summarise(printer, "Apply", &report, &aws, &bound)
}
