use std::process::ExitCode;

use super::Settings;
use crate::cli::{DevAction, DevArgs};
use crate::error::CliError;
use dev::{self, Options};

pub async fn exec(settings: &Settings, args: DevArgs) -> Result<ExitCode, CliError> {
    let dir = dev::working_dir()?;
    match args.action {
        Some(DevAction::Pay { order_id, decision }) => {
            dev::pay::exec(&dir, &order_id, decision.approve).await?;
        }
        None => {
            let blueprint = blueprint::load(&settings.blueprint).map_err(CliError::yours)?;
            let options = Options {
                dir,
                gateway_port: args.gateway_port,
                base_port: args.base_port,
                source: args.source,
                build: !args.no_build,
            };
            dev::run(&blueprint, options).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
