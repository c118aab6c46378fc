//! `techctl events list | show | redrive`: the events each service set
//! aside (its dead letters) — on the stack's SQS dead-letter queues, or
//! with `--local` in the bus of the `techctl dev` running in this folder.
//! A dead letter sent back is applied once by its service: the inbox
//! remembers every event it applied.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Settings, prepare};
use crate::cli::{EventsAction, EventsArgs};
use crate::error::CliError;
use crate::printer::Printer;
use crate::table::Table;
use aws::Aws;
use blueprint::Blueprint;
use dev::dead_letters::LocalBus;
use engine::plan::outputs::{Outputs, Own};

/// A reason is cut to this in a table; `show` gives it whole.
const REASON_SHOWN: usize = 70;

/// One dead letter, wherever it lies.
struct Letter {
    id: String,
    body: String,
    reason: String,
    at: Option<SystemTime>,
}

impl Letter {
    fn meta(&self, field: &str) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["meta"][field].as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into())
    }

    fn age(&self) -> Option<Duration> {
        self.at.and_then(|at| at.elapsed().ok())
    }

    fn json(&self, service: &str) -> Value {
        json!({
            "service": service,
            "id": self.id,
            "event": self.meta("event_name"),
            "event_id": self.meta("event_id"),
            "correlation_id": self.meta("correlation_id"),
            "age_seconds": self.age().map(|a| a.as_secs()),
            "reason": self.reason,
        })
    }
}

/// Where the dead letters are.
enum Place {
    Stack { aws: Aws, outputs: Outputs },
    Local(LocalBus),
}

impl Place {
    async fn list(&self, service: &str) -> Result<Vec<Letter>, CliError> {
        match self {
            Place::Stack { aws, outputs } => {
                let dlq = queue(outputs, service, Own::DeadLetterQueueUrl)?;
                Ok(aws::dead_letters::list(aws, &dlq)
                    .await?
                    .into_iter()
                    .map(from_sqs)
                    .collect())
            }
            Place::Local(bus) => Ok(bus
                .list(Some(service))
                .await?
                .into_iter()
                .map(from_local)
                .collect()),
        }
    }

    /// Sends back `ids` (all when `None`); answers those sent.
    async fn redrive(
        &self,
        service: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<Letter>, CliError> {
        match self {
            Place::Stack { aws, outputs } => {
                let dlq = queue(outputs, service, Own::DeadLetterQueueUrl)?;
                let to = queue(outputs, service, Own::QueueUrl)?;
                let chosen =
                    |l: &aws::dead_letters::DeadLetter| ids.is_none_or(|ids| ids.contains(&l.id));
                Ok(aws::dead_letters::redrive(aws, &dlq, &to, &chosen)
                    .await?
                    .into_iter()
                    .map(from_sqs)
                    .collect())
            }
            Place::Local(bus) => {
                let numbers = match ids {
                    Some(ids) => Some(
                        ids.iter()
                            .map(|id| {
                                id.parse::<i64>().map_err(|_| {
                                    CliError::User(format!(
                                        "{id:?} is not an id of the local bus (a number, as `techctl events list --local` shows)"
                                    ))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    None => None,
                };
                let sent = bus.redrive(service, numbers.as_deref()).await?;
                Ok(sent
                    .into_iter()
                    .map(|id| Letter {
                        id: id.to_string(),
                        body: String::new(),
                        reason: String::new(),
                        at: None,
                    })
                    .collect())
            }
        }
    }
}

fn from_sqs(l: aws::dead_letters::DeadLetter) -> Letter {
    Letter {
        id: l.id,
        body: l.body,
        reason: l.reason,
        at: l
            .sent_at_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
    }
}

fn from_local(l: dev::dead_letters::LocalDeadLetter) -> Letter {
    Letter {
        id: l.id.to_string(),
        body: l.body,
        reason: l.reason,
        at: Duration::try_from_secs_f64(l.dead_at)
            .ok()
            .map(|d| UNIX_EPOCH + d),
    }
}

fn queue(outputs: &Outputs, service: &str, what: Own) -> Result<String, CliError> {
    outputs.own(service, what).ok_or_else(|| {
        CliError::User(format!(
            "the stack's outputs name no queues of the {service} service: run `techctl up` first"
        ))
    })
}

pub async fn exec(
    settings: &Settings,
    printer: &Printer,
    action: EventsAction,
) -> Result<ExitCode, CliError> {
    let (EventsAction::List { place, .. }
    | EventsAction::Show { place, .. }
    | EventsAction::Redrive { place, .. }) = &action;
    let (blueprint, place) = open(settings, place).await?;
    match action {
        EventsAction::List { service, .. } => {
            let services = match service {
                Some(s) => vec![consumer(&blueprint, &s)?],
                None => consumers(&blueprint),
            };
            let mut table =
                Table::new(&["SERVICE", "ID", "EVENT", "CORRELATION", "AGE", "REASON"]).indent(2);
            let (mut listed, mut count) = (Vec::new(), 0);
            for service in &services {
                for letter in place.list(service).await? {
                    count += 1;
                    table.row([
                        service.clone(),
                        letter.id.clone(),
                        letter.meta("event_name"),
                        letter.meta("correlation_id"),
                        letter.age().map_or("-".into(), age),
                        shorten(&letter.reason),
                    ]);
                    listed.push(letter.json(service));
                }
            }
            printer.json(&json!({"dead_letters": listed}));
            printer.text(&if count == 0 {
                format!("No dead letters ({}).", services.join(", "))
            } else {
                format!(
                    "{count} dead letter{}:\n{}\n  `techctl events show SERVICE ID` shows one whole; once its cause is fixed, \
                     `techctl events redrive SERVICE ID` sends it back.",
                    if count == 1 { "" } else { "s" },
                    table.render()
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        EventsAction::Show { service, id, .. } => {
            consumer(&blueprint, &service)?;
            let letter = place
                .list(&service)
                .await?
                .into_iter()
                .find(|l| l.id == id)
                .ok_or_else(|| not_found(&service, &id))?;
            let event: Value =
                serde_json::from_str(&letter.body).unwrap_or(Value::String(letter.body.clone()));
            let mut whole = letter.json(&service);
            whole["message"] = event.clone();
            printer.json(&whole);
            printer.text(&format!(
                "{service} set aside {id}{}:\n  {}\n\n{}",
                letter
                    .age()
                    .map_or(String::new(), |a| format!(" {} ago", age(a))),
                letter.reason,
                serde_json::to_string_pretty(&event).unwrap_or(letter.body)
            ));
            Ok(ExitCode::SUCCESS)
        }
        EventsAction::Redrive { service, ids, .. } => {
            consumer(&blueprint, &service)?;
            let wanted = (!ids.is_empty()).then_some(ids.as_slice());
            let sent = place.redrive(&service, wanted).await?;
            let sent_ids: Vec<&str> = sent.iter().map(|l| l.id.as_str()).collect();
            let missing: Vec<&String> = ids
                .iter()
                .filter(|id| !sent_ids.contains(&id.as_str()))
                .collect();
            printer.json(&json!({"service": service, "sent_back": sent_ids, "not_found": missing}));
            printer.text(&format!(
                "Sent {} dead letter{} back to the {service} service's queue{}",
                sent.len(),
                if sent.len() == 1 { "" } else { "s" },
                if sent_ids.is_empty() {
                    ".".into()
                } else {
                    format!(": {}", sent_ids.join(", "))
                }
            ));
            if missing.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                Err(not_found(
                    &service,
                    &missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ))
            }
        }
    }
}

async fn open(settings: &Settings, args: &EventsArgs) -> Result<(Blueprint, Place), CliError> {
    if args.local {
        let blueprint = settings.load_blueprint()?;
        let dir = std::env::current_dir()
            .map_err(|e| CliError::User(format!("cannot tell the working directory: {e}")))?;
        let home = dev::home::Home::open(&dir)?;
        return Ok((blueprint, Place::Local(LocalBus::open(&home)?)));
    }
    let (blueprint, aws) = prepare(settings).await?;
    let name = engine::plan::expand::secret_name(blueprint.stack_name());
    let Some(version) = aws::secrets::current_version(&aws, &name).await? else {
        return Err(CliError::User(format!(
            "the stack {} has no secret {name}: run `techctl up` first",
            blueprint.stack_name()
        )));
    };
    let Ok(Value::Object(mut outputs)) = serde_json::from_str::<Value>(&version.text) else {
        return Err(CliError::User(format!(
            "the stack secret {name} does not hold a JSON object; restore it (its previous version is AWSPREVIOUS) or run `techctl up`"
        )));
    };
    // Only the outputs are kept: the password goes at once.
    outputs.remove(engine::plan::outputs::DB_PASSWORD);
    Ok((
        blueprint,
        Place::Stack {
            aws,
            outputs: Outputs(outputs),
        },
    ))
}

/// The services that consume events, and so have dead letters.
fn consumers(blueprint: &Blueprint) -> Vec<String> {
    blueprint
        .services()
        .filter(|(_, s)| !s.consumes.is_empty())
        .map(|(n, _)| n.to_string())
        .collect()
}

fn consumer(blueprint: &Blueprint, service: &str) -> Result<String, CliError> {
    let all = consumers(blueprint);
    if all.iter().any(|s| s == service) {
        return Ok(service.to_string());
    }
    Err(CliError::User(format!(
        "the {service:?} service consumes no events, so it has no dead letters\n  the services that do: {}",
        all.join(", ")
    )))
}

fn not_found(service: &str, id: &str) -> CliError {
    CliError::User(format!(
        "the {service} service has no dead letter {id}\n  `techctl events list {service}` shows those it has"
    ))
}

fn shorten(reason: &str) -> String {
    if reason.chars().count() <= REASON_SHOWN {
        return reason.to_string();
    }
    let cut: String = reason.chars().take(REASON_SHOWN - 1).collect();
    format!("{cut}…")
}

/// `90 s` → `1m30s`: how long ago, to the second.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}
