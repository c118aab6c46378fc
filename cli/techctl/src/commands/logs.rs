//! `techctl logs SERVICE`: a service's log lines, oldest first, from its
//! CloudWatch Logs group (every task's stream) or with `--local` from
//! `techctl dev`'s `.techctl/logs/`. The services log one JSON object a
//! line on AWS; each is rendered as time, level, request id, message and
//! fields. `--follow` keeps reading until Ctrl-C.

use std::collections::HashMap;
use std::io::{BufRead, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Settings, prepare};
use crate::error::CliError;
use crate::printer::{OutputFormat, Printer};
use engine::plan::outputs::{Outputs, Own};

/// How often `--follow` asks CloudWatch again: a few calls a minute, far
/// below FilterLogEvents' quota.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// How late CloudWatch may take in a line after its timestamp, for
/// `--follow` not to miss it.
const LATE: Duration = Duration::from_secs(10);
/// How often `--follow` looks at a local log file again.
const FOLLOW_LOCAL_EVERY: Duration = Duration::from_millis(300);
/// The most lines one read prints.
const MOST: usize = 10_000;

pub struct Wanted {
    pub service: String,
    pub since: Duration,
    pub follow: bool,
    pub filter: Option<String>,
}

pub async fn exec(
    settings: &Settings,
    printer: &Printer,
    wanted: Wanted,
    local: bool,
) -> Result<ExitCode, CliError> {
    if let Some(text) = &wanted.filter
        && (text.is_empty() || text.len() > aws::log_events::PATTERN_MAX - 2)
    {
        return Err(CliError::User(format!(
            "--filter takes 1 to {} characters of text",
            aws::log_events::PATTERN_MAX - 2
        )));
    }
    let since_ms = SystemTime::now()
        .checked_sub(wanted.since)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    if local {
        return local_logs(settings, printer, &wanted, since_ms).await;
    }
    let (blueprint, aws) = prepare(settings).await?;
    super::secrets::known_service(&blueprint, &wanted.service)?;
    let name = engine::plan::expand::secret_name(blueprint.stack_name());
    let outputs = match aws::secrets::current_version(&aws, &name).await? {
        Some(v) => serde_json::from_str::<Value>(&v.text).ok(),
        None => None,
    };
    let group = outputs
        .and_then(|o| o.as_object().cloned())
        .and_then(|o| Outputs(o).own(&wanted.service, Own::LogGroup))
        .ok_or_else(|| {
            CliError::User(format!(
                "the stack {} names no log group of the {} service: run `techctl up` first",
                blueprint.stack_name(),
                wanted.service
            ))
        })?;
    let mut from = since_ms;
    // The ids printed, with their time, as far back as the next read goes.
    let mut seen: HashMap<String, i64> = HashMap::new();
    loop {
        let events = aws::log_events::read(&aws, &group, from, wanted.filter.as_deref(), MOST)
            .await?
            .ok_or_else(|| {
                CliError::User(format!(
                    "the log group {group} does not exist: run `techctl up`, then `techctl deploy {}`",
                    wanted.service
                ))
            })?;
        // CloudWatch takes in a line some seconds after its timestamp, so
        // each read goes back LATE before the newest line seen; what was
        // printed already is known by id and skipped.
        let fresh: Vec<_> = events
            .into_iter()
            .filter(|e| !seen.contains_key(&e.id))
            .collect();
        for event in &fresh {
            print_line(printer, event.timestamp, &event.stream, &event.message);
        }
        if !wanted.follow {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(newest) = fresh.iter().map(|e| e.timestamp).max() {
            from = from.max(newest - LATE.as_millis() as i64);
        }
        seen.extend(fresh.into_iter().map(|e| (e.id, e.timestamp)));
        seen.retain(|_, at| *at >= from);
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Whether `techctl dev` runs in the working folder, in which case its
/// logs are the ones meant (said on stderr, with the way to AWS's).
pub fn dev_runs_here(printer: &Printer) -> bool {
    let Ok(dir) = std::env::current_dir() else {
        return false;
    };
    // Only a folder where techctl dev has run is looked at: nothing is
    // made in any other.
    if !dir.join(dev::home::FOLDER).join("dev.lock").exists() || dev::running_in(&dir).is_err() {
        return false;
    }
    printer.note("techctl dev runs in this folder: its logs (pass --aws for CloudWatch Logs)");
    true
}

async fn local_logs(
    settings: &Settings,
    printer: &Printer,
    wanted: &Wanted,
    since_ms: i64,
) -> Result<ExitCode, CliError> {
    let blueprint = settings.load_blueprint()?;
    super::secrets::known_service(&blueprint, &wanted.service)?;
    let dir = std::env::current_dir()
        .map_err(|e| CliError::User(format!("cannot tell the working directory: {e}")))?;
    let file: PathBuf = dev::home::Home::open(&dir)?
        .logs()
        .join(format!("{}.log", wanted.service));
    let opened = std::fs::File::open(&file).map_err(|e| {
        CliError::User(format!(
            "cannot read {}: {e}\n  start the system here with `techctl dev`",
            file.display()
        ))
    })?;
    let mut reader = std::io::BufReader::new(opened);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| CliError::User(format!("cannot read {}: {e}", file.display())))?;
        if read == 0 || !line.ends_with('\n') {
            // At the end (or in the middle of a line still being written):
            // wait for more when following.
            if !wanted.follow {
                return Ok(ExitCode::SUCCESS);
            }
            let back = line.len() as i64;
            let _ = reader.seek(SeekFrom::Current(-back));
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_LOCAL_EVERY) => continue,
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
        let text = line.trim_end();
        let at = line_time(text);
        if at.is_some_and(|at| at < since_ms) {
            continue;
        }
        if wanted.filter.as_deref().is_some_and(|f| !text.contains(f)) {
            continue;
        }
        print_line(printer, at.unwrap_or_default(), "", text);
    }
}

/// The time a line starts with (RFC 3339, as the services write it), in
/// milliseconds since the Unix epoch.
fn line_time(line: &str) -> Option<i64> {
    let text = match serde_json::from_str::<Value>(line) {
        Ok(json) => json["timestamp"].as_str()?.to_string(),
        Err(_) => line.split_whitespace().next()?.to_string(),
    };
    let at = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

fn print_line(printer: &Printer, timestamp: i64, stream: &str, message: &str) {
    if printer.format() == OutputFormat::Json {
        let line = serde_json::from_str::<Value>(message).unwrap_or(Value::String(message.into()));
        printer.json(&serde_json::json!({"timestamp": timestamp, "stream": stream, "line": line}));
    } else {
        printer.text(&render(timestamp, message));
    }
}

/// A JSON log line as `TIME LEVEL [request id] message key=value…`; any
/// other line as it is.
pub fn render(timestamp: i64, message: &str) -> String {
    let Ok(Value::Object(line)) = serde_json::from_str::<Value>(message) else {
        return message.to_string();
    };
    let time = line["timestamp"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            humantime::format_rfc3339_millis(
                UNIX_EPOCH + Duration::from_millis(timestamp.max(0) as u64),
            )
            .to_string()
        });
    let level = line["level"].as_str().unwrap_or("-");
    let mut out = format!("{time} {level:5}");
    let span = line.get("span").and_then(Value::as_object);
    if let Some(id) = span
        .and_then(|s| s.get("request_id"))
        .and_then(Value::as_str)
    {
        out.push_str(&format!(" [{id}]"));
    }
    let fields = line.get("fields").and_then(Value::as_object);
    if let Some(text) = fields
        .and_then(|f| f.get("message"))
        .and_then(Value::as_str)
    {
        out.push(' ');
        out.push_str(text);
    }
    let extra = fields
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "message")
        .chain(
            span.into_iter()
                .flatten()
                .filter(|(k, _)| *k != "request_id" && *k != "name"),
        );
    for (key, value) in extra {
        match value.as_str() {
            Some(text) => out.push_str(&format!(" {key}={text}")),
            None => out.push_str(&format!(" {key}={value}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_reads_as_time_level_request_id_and_message() {
        let line = r#"{"timestamp":"2026-11-30T08:07:52.863572Z","level":"INFO","fields":{"message":"finished processing request","latency":"3 ms","status":200},"span":{"method":"GET","path":"/products","request_id":"ab8d","name":"request"}}"#;
        assert_eq!(
            render(0, line),
            "2026-11-30T08:07:52.863572Z INFO  [ab8d] finished processing request latency=3 ms status=200 method=GET path=/products"
        );
        assert_eq!(render(0, "plain text"), "plain text");
        assert_eq!(line_time(line), Some(1_796_026_072_863));
        assert_eq!(
            line_time("2026-11-30T08:07:52.863572Z  INFO ready"),
            Some(1_796_026_072_863)
        );
        assert_eq!(line_time("no time here"), None);
    }
}
