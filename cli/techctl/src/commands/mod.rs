//! Each command turns its arguments into settings and calls the library;
//! the work itself lives in `stack`, `plan` and `apply`.

mod deploy;
mod dev;
mod down;
mod keys;
mod plan;
mod status;
mod up;
mod verify;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::cli::{Cli, Command};
use crate::error::CliError;
use crate::printer::{OutputFormat, Printer};
use aws::{self, Aws, AwsSettings};
use blueprint::{self, Blueprint};
use engine::apply::{self, Report};

/// The global options, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub blueprint: PathBuf,
    pub aws: AwsSettings,
    pub output: OutputFormat,
    pub yes: bool,
}

impl Settings {
    pub fn from_cli(cli: &Cli) -> Self {
        Self {
            blueprint: cli.global.blueprint.clone(),
            aws: AwsSettings {
                region: cli.global.region.clone(),
                profile: cli.global.profile.clone(),
                endpoint_url: None,
                emulator_credentials: false,
                max_attempts: std::env::var("AWS_MAX_ATTEMPTS")
                    .ok()
                    .and_then(|v| v.parse().ok()),
            },
            output: cli.global.output,
            yes: cli.global.yes,
        }
    }
}

/// Runs a parsed command line to its exit code.
pub fn run(cli: Cli) -> ExitCode {
    let settings = Settings::from_cli(&cli);
    let printer = Arc::new(Printer::new(settings.output));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Plan { detailed_exitcode } => {
                plan::exec(&settings, &printer, detailed_exitcode).await
            }
            Command::Up {
                parallelism,
                no_deploy,
                deploy,
            } => {
                let deploy = (!no_deploy).then_some(deploy);
                up::exec(&settings, &printer, parallelism.into(), deploy).await
            }
            Command::Deploy {
                services,
                all,
                image,
                dry_run,
                deploy: how,
            } => {
                deploy::exec(
                    &settings,
                    &printer,
                    deploy::Which {
                        services,
                        all,
                        image,
                        dry_run,
                    },
                    how,
                )
                .await
            }
            Command::Down {
                force_delete_secrets,
                keep_data,
                parallelism,
            } => {
                let options = apply::Options {
                    parallelism: parallelism.into(),
                    force_delete_secrets,
                    keep_data,
                };
                down::exec(&settings, &printer, options).await
            }
            Command::Status => status::exec(&settings, &printer).await,
            Command::Verify => verify::exec(&settings, &printer).await,
            Command::Dev(args) => dev::exec(&settings, &printer, args).await,
            Command::Keys(action) => keys::exec(&settings, &printer, action).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            printer.error(&e.to_string());
            e.exit_code()
        }
    }
}

/// Loads the blueprint and connects to AWS; a bad blueprint never gets as
/// far as a client.
pub(crate) async fn prepare(settings: &Settings) -> Result<(Blueprint, Aws), CliError> {
    let blueprint = blueprint::load(&settings.blueprint).map_err(CliError::yours)?;
    let aws = aws::connect(&settings.aws, blueprint.region())
        .await
        .map_err(CliError::yours)?;
    Ok((blueprint, aws))
}

/// Asks on the terminal; without one, only `--yes` lets a destructive
/// command go on.
pub(crate) fn confirm(
    settings: &Settings,
    question: &str,
    expected: &str,
    flag_hint: &str,
) -> Result<(), CliError> {
    if settings.yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::User(format!(
            "{question}\n  there is no terminal to confirm on: re-run with --yes {flag_hint}"
        )));
    }
    eprint!("{question}\n  type {expected:?} to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(CliError::User("not confirmed; nothing was changed".into()))
    }
}

/// The closing summary of an apply, for people or scripts.
pub(crate) fn summarise(
    printer: &Printer,
    what: &str,
    report: &Report,
    aws: &Aws,
) -> Result<ExitCode, CliError> {
    printer.end_live();
    let total_calls = aws.calls.len();
    let total_mutating = aws.calls.mutating();
    if printer.format() == OutputFormat::Json {
        printer.json(&json!({
            "summary": report,
            "total_aws_calls": total_calls,
            "total_mutating_calls": total_mutating,
        }));
    } else {
        let failed: Vec<_> = report.failed().collect();
        let skipped: Vec<_> = report.skipped().collect();
        let done = report.results.len() - failed.len() - skipped.len();
        let mut text = format!(
            "\n{what} {} in {:.1}s: {done} done, {} failed, {} skipped; {total_calls} AWS calls ({total_mutating} changing).",
            if failed.is_empty() && skipped.is_empty() {
                "complete"
            } else {
                "incomplete"
            },
            report.elapsed_seconds,
            failed.len(),
            skipped.len(),
        );
        if !failed.is_empty() {
            text.push_str("\nFailed:");
            for r in &failed {
                if let engine::apply::Outcome::Failed(error) = &r.outcome {
                    text.push_str(&format!("\n  {} ({}): {error}", r.id, r.kind));
                }
            }
        }
        if !skipped.is_empty() {
            text.push_str("\nSkipped because something they need failed:");
            for r in &skipped {
                if let engine::apply::Outcome::Skipped(because) = &r.outcome {
                    text.push_str(&format!("\n  {} (after {because})", r.id));
                }
            }
        }
        printer.text(&text);
    }
    if report.succeeded() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::Partial(format!(
            "{what} did not finish: {} failed, {} skipped. Fix the cause above and run it again; it picks up where it stopped.",
            report.failed().count(),
            report.skipped().count()
        )))
    }
}
