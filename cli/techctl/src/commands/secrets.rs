//! `techctl secrets set | list | unset`: what operators supply to a
//! service, in the service's own secret (or with `--local` in `techctl
//! dev`'s file). A value is read from standard input, never from an
//! argument, and never printed.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use serde_json::json;

use super::{Settings, prepare};
use crate::cli::{SecretStoreArgs, SecretsAction};
use crate::error::CliError;
use crate::printer::Printer;
use crate::secretstore::SecretStore;
use crate::table::Table;
use aws::deploy::task::{ADMIN_PASSWORD, operator_values};
use blueprint::Blueprint;
use dev::home::FOLDER;

/// The shortest first-admin password accepted.
const ADMIN_PASSWORD_LENGTH: usize = 12;

pub async fn exec(
    settings: &Settings,
    printer: &Printer,
    action: SecretsAction,
) -> Result<ExitCode, CliError> {
    let (SecretsAction::Set { store, .. }
    | SecretsAction::List { store, .. }
    | SecretsAction::Unset { store, .. }) = &action;
    let (blueprint, store) = open(settings, store).await?;
    match action {
        SecretsAction::Set {
            service,
            name,
            store: args,
        } => {
            settable(&blueprint, &service, &name)?;
            if args.local && name == ADMIN_PASSWORD.1 {
                return Err(CliError::User(format!(
                    "`techctl dev` makes its own first admin (its credentials are in {FOLDER}/local.json); {name} is for the stack on AWS"
                )));
            }
            let value = read_value(&service, &name)?;
            if name == ADMIN_PASSWORD.1 && value.chars().count() < ADMIN_PASSWORD_LENGTH {
                return Err(CliError::User(format!(
                    "the first admin's password must have {ADMIN_PASSWORD_LENGTH} characters at least; nothing was changed"
                )));
            }
            store.set(&service, &name, &value).await?;
            printer.json(&json!({"service": service, "name": name, "set": true}));
            printer.text(&format!(
                "Set {name} in {}.{}",
                store.describe(&service),
                match &store {
                    SecretStore::Stack { .. } => format!(
                        "\n  Tasks get it when they start: `techctl deploy {service}` rolls it out."
                    ),
                    SecretStore::File(_) =>
                        "\n  `techctl dev` hands it to the service on its next start.".into(),
                }
            ));
            Ok(ExitCode::SUCCESS)
        }
        SecretsAction::Unset { service, name, .. } => {
            settable(&blueprint, &service, &name)?;
            let found = store.unset(&service, &name).await?;
            printer.json(&json!({"service": service, "name": name, "removed": found}));
            printer.text(&if found {
                format!("Removed {name} from {}.", store.describe(&service))
            } else {
                format!(
                    "{} holds no {name}; nothing was changed.",
                    store.describe(&service)
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        SecretsAction::List { service, .. } => {
            let services: Vec<String> = match service {
                Some(s) => {
                    known_service(&blueprint, &s)?;
                    vec![s]
                }
                None => blueprint.services().map(|(n, _)| n.to_string()).collect(),
            };
            let mut rows = Vec::new();
            let mut listed = Vec::new();
            for service in &services {
                let held = store.list(service).await?;
                let mut names: Vec<serde_json::Value> = Vec::new();
                for (name, at) in &held {
                    let by = if at.is_some() {
                        "techctl secrets set"
                    } else if name == engine::plan::outputs::DB_PASSWORD {
                        "techctl up"
                    } else {
                        "by hand"
                    };
                    names.push(json!({"name": name, "set_at": at, "set_by": by}));
                    rows.push([
                        service.clone(),
                        name.clone(),
                        at.clone().unwrap_or_else(|| "-".into()),
                        by.to_string(),
                    ]);
                }
                // What the service needs and lacks, with the command that sets it.
                for (_, name, what) in needed(&blueprint, service) {
                    if !held.contains_key(*name) {
                        names.push(json!({"name": name, "missing": true, "holds": what}));
                        rows.push([
                            service.clone(),
                            name.to_string(),
                            "missing".into(),
                            format!("techctl secrets set {service} {name}"),
                        ]);
                    }
                }
                listed.push(json!({"service": service, "values": names}));
            }
            printer.json(&json!({"services": listed}));
            let mut table = Table::new(&["SERVICE", "NAME", "SET AT", "BY"]).indent(2);
            for row in rows {
                table.row(row);
            }
            printer.text(&format!(
                "Secrets ({}; values are never shown):\n{}",
                match &store {
                    SecretStore::Stack { stack, .. } => format!("stack {stack}"),
                    SecretStore::File(path) => path.display().to_string(),
                },
                table.render()
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(
    settings: &Settings,
    args: &SecretStoreArgs,
) -> Result<(Blueprint, SecretStore), CliError> {
    if args.local {
        let blueprint = settings.load_blueprint()?;
        let dir = std::env::current_dir()
            .map_err(|e| CliError::User(format!("cannot tell the working directory: {e}")))?;
        let home = dev::home::Home::open(&dir).map_err(CliError::from)?;
        return Ok((blueprint, SecretStore::File(home.secrets_file())));
    }
    let (blueprint, aws) = prepare(settings).await?;
    let stack = blueprint.stack_name().to_string();
    Ok((blueprint, SecretStore::Stack { aws, stack }))
}

/// `service` is one of the blueprint's, or the error names them all.
pub(crate) fn known_service(blueprint: &Blueprint, service: &str) -> Result<(), CliError> {
    if blueprint.services().any(|(n, _)| n == service) {
        return Ok(());
    }
    Err(CliError::User(format!(
        "the blueprint has no service {service:?}\n  its services: {}",
        blueprint
            .services()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// What `service` needs from operators under this blueprint.
fn needed(
    blueprint: &Blueprint,
    service: &str,
) -> Vec<&'static (&'static str, &'static str, &'static str)> {
    operator_values(service)
        .iter()
        .filter(|(_, name, _)| *name != ADMIN_PASSWORD.1 || blueprint.admin_email().is_some())
        .collect()
}

/// Only what a service reads can be set: anything else would sit unused
/// (a typo), and `db_password` is `up`'s to make.
fn settable(blueprint: &Blueprint, service: &str, name: &str) -> Result<(), CliError> {
    known_service(blueprint, service)?;
    if operator_values(service).iter().any(|(_, n, _)| *n == name) {
        return Ok(());
    }
    if name == engine::plan::outputs::DB_PASSWORD {
        return Err(CliError::User(format!(
            "{name} is made by `techctl up` for the {service} service's database role; it is not set by hand"
        )));
    }
    let known: Vec<String> = operator_values(service)
        .iter()
        .map(|(_, n, what)| format!("{n} ({what})"))
        .collect();
    Err(CliError::User(format!(
        "the {service} service reads no value named {name:?}\n  {}",
        if known.is_empty() {
            "it reads none from operators".to_string()
        } else {
            format!("it reads: {}", known.join(", "))
        }
    )))
}

/// The value from standard input: a prompt that does not echo on a
/// terminal, else everything piped in (one trailing newline dropped).
fn read_value(service: &str, name: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        read_hidden_line(&format!("{service} {name} (not shown): "))?
    } else {
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).map_err(|e| {
            CliError::User(format!("cannot read the value from standard input: {e}"))
        })?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        text.strip_suffix('\r').unwrap_or(text).to_string()
    };
    if value.is_empty() {
        return Err(CliError::User(format!(
            "no value for {name} on standard input; nothing was changed\n  pipe it in (`techctl secrets set {service} {name} < file`) or type it at the prompt"
        )));
    }
    Ok(value)
}

/// One line from the terminal with echo off, restored afterwards whatever
/// happens. The prompt comes only once the echo is off: what is typed (or
/// pasted) the moment it shows is never shown.
fn read_hidden_line(prompt: &str) -> Result<String, CliError> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).map_err(|e| {
        CliError::User(format!(
            "cannot turn the terminal's echo off ({e}); pipe the value in instead"
        ))
    })?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)
        .map_err(|e| CliError::User(format!("cannot turn the terminal's echo off: {e}")))?;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &before);
    read.map_err(|e| CliError::User(format!("cannot read the value: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
