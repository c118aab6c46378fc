use std::process::ExitCode;
use std::sync::Arc;

use super::Settings;
use crate::cli::{DevAction, DevArgs};
use crate::error::CliError;
use crate::printer::Printer;
use dev::{self, Options};

pub async fn exec(
    settings: &Settings,
    printer: &Arc<Printer>,
    args: DevArgs,
) -> Result<ExitCode, CliError> {
    let dir = dev::working_dir()?;
    match args.action {
        Some(DevAction::Pay { order_id, decision }) => {
            let paid = dev::pay::exec(&dir, &order_id, decision.approve).await?;
            printer.text(&paid.sentence());
            printer.json(&serde_json::to_value(&paid).unwrap_or_default());
        }
        None => {
            let blueprint = settings.load_blueprint()?;
            let options = Options {
                dir,
                gateway_port: args.gateway_port,
                base_port: args.base_port,
                source: args.source,
                build: !args.no_build,
                profile: args.cargo_profile,
            };
            dev::run(&blueprint, options, printer.clone()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
