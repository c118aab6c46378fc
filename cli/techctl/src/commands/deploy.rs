//! `techctl deploy SERVICE… | --all`.

use std::process::ExitCode;
use std::time::Duration;

use super::{Settings, prepare};
use crate::cli::DeployArgs;
use crate::deploy::{self, Options};
use crate::error::CliError;
use crate::printer::Printer;
use blueprint::Blueprint;

/// What to deploy.
#[derive(Debug)]
pub struct Which {
    pub services: Vec<String>,
    pub all: bool,
    pub image: Option<String>,
    pub dry_run: bool,
}

/// How often the rollout is looked at: a progress view (its events and
/// stopped tasks as they come), so more often than a wait's pace.
const POLL: Duration = Duration::from_secs(10);

pub async fn exec(
    settings: &Settings,
    printer: &Printer,
    which: Which,
    how: DeployArgs,
) -> Result<ExitCode, CliError> {
    let clock_scale = settings.clock_scale()?;
    let (blueprint, aws) = prepare(settings).await?;
    let services = if which.all {
        every_service(&blueprint)
    } else {
        for name in &which.services {
            if !blueprint.services().any(|(n, _)| n == name) {
                return Err(CliError::User(format!(
                    "the blueprint has no service {name:?}; it has {}",
                    every_service(&blueprint).join(", ")
                )));
            }
        }
        which.services
    };
    let options = options(services, which.image, which.dry_run, how, clock_scale);
    deploy::run(&aws, &blueprint, &options, printer).await?;
    Ok(ExitCode::SUCCESS)
}

pub fn every_service(blueprint: &Blueprint) -> Vec<String> {
    blueprint.services().map(|(n, _)| n.to_string()).collect()
}

pub fn options(
    services: Vec<String>,
    image: Option<String>,
    dry_run: bool,
    how: DeployArgs,
    clock_scale: f64,
) -> Options {
    Options {
        services,
        registry: how.registry,
        image,
        dry_run,
        wait: !how.no_wait,
        // On an emulator's faster clock, as much faster.
        timeout: how.timeout.mul_f64(clock_scale),
        poll: POLL.mul_f64(clock_scale),
        source: how.source,
        profile: how.cargo_profile,
        build: !how.no_build,
    }
}
