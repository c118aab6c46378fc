//! A service's log events from CloudWatch Logs, oldest first, a page at a
//! time: what `techctl logs` prints and follows.

use crate::{Aws, AwsError};

/// CloudWatch Logs' longest filter pattern.
pub const PATTERN_MAX: usize = 1024;

/// One log line as CloudWatch keeps it.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The task's stream: `service/service/TASK_ID`.
    pub stream: String,
    pub message: String,
}

/// The events of `group` from `since_ms` on (up to `most`), those holding
/// `text` when given; `None` when the group does not exist.
pub async fn read(
    aws: &Aws,
    group: &str,
    since_ms: i64,
    text: Option<&str>,
    most: usize,
) -> Result<Option<Vec<LogEvent>>, AwsError> {
    let pattern = text.map(quoted);
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let page = sdk!(
            "FilterLogEvents",
            aws.logs
                .filter_log_events()
                .log_group_name(group)
                .start_time(since_ms)
                .set_filter_pattern(pattern.clone())
                .set_next_token(token)
                .send()
        );
        let page = match page {
            Ok(page) => page,
            Err(e) if e.code.as_deref() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(e),
        };
        events.extend(page.events().iter().map(|e| LogEvent {
            id: e.event_id().unwrap_or_default().to_string(),
            timestamp: e.timestamp().unwrap_or_default(),
            stream: e.log_stream_name().unwrap_or_default().to_string(),
            message: e.message().unwrap_or_default().trim_end().to_string(),
        }));
        token = page.next_token().map(str::to_string);
        if token.is_none() || events.len() >= most {
            break;
        }
    }
    events.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
    events.truncate(most);
    Ok(Some(events))
}

/// `text` as a filter pattern that matches it as written: a quoted term
/// (CloudWatch's syntax would read `?`, `-` or `{` in it as operators).
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_filter_matches_the_text_as_written() {
        assert_eq!(super::quoted("payment failed"), "\"payment failed\"");
        assert_eq!(super::quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
