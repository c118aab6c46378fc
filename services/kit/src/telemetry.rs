//! Logs: readable on a terminal, one JSON object per line with
//! `LOG_FORMAT=json` (for CloudWatch). `RUST_LOG` filters as usual.
//!
//! A request's thread does not write its log line: it copies it into a
//! shared buffer, and a thread of its own writes the buffer out every
//! [`DRAIN_EVERY`], many lines a write. A line reaches the output at most
//! that late; [`flush`] (called when a service stops) writes what is left.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// How often the log thread writes out what the requests logged.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// Beyond this much waiting, a request writes the buffer out itself: under
/// a flood of logs the output slows the requests, never loses a line.
const BUFFER_MAX: usize = 4 << 20;

/// Lines logged and not yet written.
static PENDING: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn pending() -> &'static Mutex<Vec<u8>> {
    PENDING.get_or_init(|| {
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| {
                let mut out = Vec::new();
                loop {
                    std::thread::sleep(DRAIN_EVERY);
                    drain(&mut out);
                }
            })
            .expect("a thread for the logs");
        Mutex::new(Vec::with_capacity(64 << 10))
    })
}

/// Writes out the lines pending, swapping buffers so that the requests
/// keep logging meanwhile.
fn drain(out: &mut Vec<u8>) {
    {
        let mut lines = pending().lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *lines, out);
    }
    if !out.is_empty() {
        let _ = std::io::stdout().lock().write_all(out);
        out.clear();
    }
}

/// Writes every line logged so far.
pub fn flush() {
    drain(&mut Vec::new());
}

/// The writer each log line is given: a copy into the shared buffer.
struct Buffered;

impl Write for Buffered {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut lines = pending().lock().unwrap_or_else(|p| p.into_inner());
        lines.extend_from_slice(line);
        if lines.len() > BUFFER_MAX {
            let _ = std::io::stdout().lock().write_all(&lines);
            lines.clear();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the global subscriber; a second call (tests) does nothing.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "info,{}=info,tower_http=info",
            service.replace('-', "_")
        ))
    });
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| Buffered);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
