//! Each command turns its arguments into settings and calls the library;
//! the work itself lives in `stack`, `plan` and `apply`.

mod deploy;
mod dev;
mod docs;
mod down;
mod events;
mod keys;
mod lock;
mod logs;
mod plan;
mod secrets;
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
use engine::apply::critical::CriticalPath;
use engine::apply::{self, Report};

/// The global options, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub blueprint: PathBuf,
    /// `--env`: the blueprint's environment, or the base.
    pub environment: Option<String>,
    pub aws: AwsSettings,
    pub output: OutputFormat,
    pub yes: bool,
    /// `TECHCTL_AWS_CLOCK_SCALE`, as given.
    pub clock_scale: Option<String>,
    /// How long to wait for a stack another run has locked.
    pub lock_timeout: std::time::Duration,
}

/// The variable that tells techctl its emulator plays AWS's timings back
/// faster (testkit's timed proxy does), so waits poll as often, scaled.
pub const CLOCK_SCALE_VAR: &str = "TECHCTL_AWS_CLOCK_SCALE";

impl Settings {
    /// The blueprint, for the environment chosen with `--env`.
    /// The blueprint, validated, and the IAM policies it makes checked
    /// against IAM's quotas and AWS's actions before any call.
    pub fn load_blueprint(&self) -> Result<Blueprint, CliError> {
        let bp = blueprint::load_in(&self.blueprint, self.environment.as_deref())
            .map_err(CliError::yours)?;
        let problems =
            engine::plan::expand::policies::problems(&engine::plan::expand::desired(&bp));
        if !problems.is_empty() {
            return Err(CliError::User(format!(
                "the blueprint {} would make IAM policies AWS refuses; nothing was sent to AWS:\n  {}\n  fix: fewer services or events on one role, or a known action",
                self.blueprint.display(),
                problems.join("\n  ")
            )));
        }
        Ok(bp)
    }

    /// How fast the cloud's clock runs against AWS's: 1 unless an emulator
    /// says otherwise. Refused against AWS itself, where polling faster
    /// than AWS moves only invites throttling.
    pub fn clock_scale(&self) -> Result<f64, CliError> {
        let Some(text) = &self.clock_scale else {
            return Ok(1.0);
        };
        let scale: f64 = text.trim().parse().unwrap_or(f64::NAN);
        if !(scale > 0.0 && scale <= 1.0) {
            return Err(CliError::User(format!(
                "{CLOCK_SCALE_VAR}={text:?} is not a scale\n  give a number above 0 and at most 1 (1/60 runs AWS's minutes in seconds: 0.0167), or unset it"
            )));
        }
        let emulated = self.aws.endpoint_url.is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty());
        if !emulated {
            return Err(CliError::User(format!(
                "{CLOCK_SCALE_VAR} is set but techctl is talking to AWS itself, whose clock it cannot change\n  unset {CLOCK_SCALE_VAR}, or set AWS_ENDPOINT_URL to the emulator that runs faster"
            )));
        }
        Ok(scale)
    }

    pub fn from_cli(cli: &Cli) -> Self {
        Self {
            blueprint: cli.global.blueprint.clone(),
            environment: cli.global.environment.clone().filter(|e| !e.is_empty()),
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
            clock_scale: std::env::var(CLOCK_SCALE_VAR).ok(),
            lock_timeout: cli.global.lock_timeout,
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
        let lock = match locked(&cli.command) {
            true => Some(lock::take(&settings, &printer).await?),
            false => None,
        };
        let outcome = run_command(cli.command, &settings, &printer).await;
        if let Some(held) = lock {
            held.release(&printer).await;
        }
        outcome
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            printer.error(&e.to_string());
            e.exit_code()
        }
    }
}

/// Whether `command` changes the stack, and so runs under its lock.
fn locked(command: &Command) -> bool {
    use crate::cli::KeysAction;
    match command {
        Command::Up { .. } | Command::Down { .. } => true,
        Command::Deploy { dry_run, .. } => !dry_run,
        Command::Keys(KeysAction::Rotate { store, .. } | KeysAction::Retire { store, .. }) => {
            !store.local
        }
        _ => false,
    }
}

async fn run_command(
    command: Command,
    settings: &Settings,
    printer: &Arc<Printer>,
) -> Result<ExitCode, CliError> {
    let (settings, printer) = (settings.clone(), printer.clone());
    {
        match command {
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
                    clock_scale: 1.0,
                };
                down::exec(&settings, &printer, options).await
            }
            Command::Status => status::exec(&settings, &printer).await,
            Command::Verify => verify::exec(&settings, &printer).await,
            Command::Dev(args) => dev::exec(&settings, &printer, args).await,
            Command::Keys(action) => keys::exec(&settings, &printer, action).await,
            Command::Secrets(action) => secrets::exec(&settings, &printer, action).await,
            Command::Events(action) => events::exec(&settings, &printer, action).await,
            Command::Logs {
                service,
                since,
                follow,
                filter,
                local,
                aws,
            } => {
                let wanted = logs::Wanted {
                    service,
                    since,
                    follow,
                    filter,
                };
                // Where techctl dev runs, its logs, unless AWS is named:
                // --aws, an environment, a profile or a region.
                let aws_named = aws
                    || settings.environment.is_some()
                    || settings.aws.profile.is_some()
                    || settings.aws.region.is_some();
                let local = local || (!aws_named && logs::dev_runs_here(&printer));
                logs::exec(&settings, &printer, wanted, local).await
            }
            Command::Completions { shell } => docs::completions(shell),
            Command::Man { dir } => docs::man(dir.as_deref(), &printer),
            Command::Unlock { lock_id } => lock::unlock(&settings, &printer, &lock_id).await,
        }
    }
}

/// Loads the blueprint and connects to AWS; a bad blueprint never gets as
/// far as a client.
pub(crate) async fn prepare(settings: &Settings) -> Result<(Blueprint, Aws), CliError> {
    let blueprint = settings.load_blueprint()?;
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

/// The least time an apply can take: its critical path on the clock it
/// runs against.
pub struct Bound {
    pub path: CriticalPath,
    pub scale: f64,
}

impl Bound {
    /// The critical path's seconds on this run's clock.
    pub fn seconds(&self) -> f64 {
        self.path.seconds as f64 * self.scale
    }

    /// Wall time over the bound; `None` when nothing had to wait.
    pub fn ratio(&self, elapsed_seconds: f64) -> Option<f64> {
        let bound = self.seconds();
        (bound > 0.0).then(|| elapsed_seconds / bound)
    }
}

/// The closing summary of an apply, for people or scripts.
pub(crate) fn summarise(
    printer: &Printer,
    what: &str,
    report: &Report,
    aws: &Aws,
    bound: &Bound,
) -> Result<ExitCode, CliError> {
    printer.end_live();
    let total_calls = aws.calls.len();
    let total_mutating = aws.calls.mutating();
    let polls: u32 = report.waits.iter().map(|w| w.polls).sum();
    if printer.format() == OutputFormat::Json {
        printer.json(&json!({
            "summary": report,
            "total_aws_calls": total_calls,
            "aws_calls_by_operation": aws.calls.by_operation(),
            "total_mutating_calls": total_mutating,
            "polling_calls": polls,
            "critical_path": bound.path,
            "clock_scale": bound.scale,
            "critical_path_seconds": bound.seconds(),
            "ratio_to_critical_path": bound.ratio(report.elapsed_seconds),
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
        text.push_str(&crate::render::against_bound(report, bound, polls));
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
