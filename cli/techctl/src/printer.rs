//! All output goes through one printer: a live view on a terminal, plain
//! timestamped lines otherwise (CI logs), or JSON lines for scripts.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use engine::apply::{Event, Reporter, Status};
use engine::plan::{Action, LogicalId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// How often a long wait is reported on plain lines, as Terraform does.
const WAIT_REPORT_EVERY: Duration = Duration::from_secs(10);

pub struct Printer {
    format: OutputFormat,
    live: Option<MultiProgress>,
    colour: bool,
    live_over: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    bars: HashMap<LogicalId, (ProgressBar, Instant)>,
    last_wait_report: HashMap<LogicalId, Instant>,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        let terminal = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
        let live = (format == OutputFormat::Text && terminal)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            format,
            live,
            colour: format == OutputFormat::Text
                && std::io::stdout().is_terminal()
                && console::colors_enabled(),
            live_over: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    pub fn colour(&self) -> bool {
        self.colour
    }

    /// Writes a block of text for people (ignored in JSON mode).
    pub fn text(&self, text: &str) {
        if self.format == OutputFormat::Text {
            self.line(text.trim_end_matches('\n'));
        }
    }

    /// Writes one JSON document (JSON mode only).
    pub fn json(&self, value: &serde_json::Value) {
        if self.format == OutputFormat::Json {
            self.line(&value.to_string());
        }
    }

    /// A warning for people, on standard error so that it never mixes with
    /// what a script reads; in JSON mode a `{"warning": …}` line.
    pub fn warn(&self, text: &str) {
        match self.format {
            OutputFormat::Text => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "warning: {}", text.trim_end());
            }
            OutputFormat::Json => self.line(&serde_json::json!({ "warning": text }).to_string()),
        }
    }

    /// A remark for people on standard error, never in what a script reads
    /// (text or JSON on standard output).
    pub fn note(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "note: {}", text.trim_end());
    }

    /// The paragraph of a failed command, on standard error; in JSON mode
    /// also an `{"error": …}` line.
    pub fn error(&self, text: &str) {
        if self.format == OutputFormat::Json {
            self.line(&serde_json::json!({ "error": text }).to_string());
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", text.trim_end());
    }

    /// Ends the live view: what is printed next goes below its last frame.
    pub fn end_live(&self) {
        self.live_over
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn line(&self, text: &str) {
        let over = self.live_over.load(std::sync::atomic::Ordering::SeqCst);
        match &self.live {
            Some(multi) if !over => {
                let _ = multi.println(text);
            }
            _ => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            style.apply_to(text).to_string()
        } else {
            text.to_string()
        }
    }

    fn verbs(action: Action) -> (&'static str, &'static str) {
        match action {
            Action::Create => ("Creating", "Created"),
            Action::Update => ("Updating", "Updated"),
            Action::Replace => ("Replacing", "Replaced"),
            Action::Delete => ("Deleting", "Deleted"),
            Action::NoOp => ("Checking", "Unchanged"),
        }
    }

    fn plain(&self, event: &Event) {
        let (doing, done) = Self::verbs(event.action);
        let (verb, style, detail) = match &event.status {
            Status::Started => (doing, Style::new().cyan(), format!("{}", event.kind)),
            Status::Waiting {
                what,
                elapsed_seconds,
                state: aws_state,
            } => {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let due = state
                    .last_wait_report
                    .get(&event.id)
                    .is_none_or(|last| now.duration_since(*last) >= WAIT_REPORT_EVERY);
                if !due {
                    return;
                }
                state.last_wait_report.insert(event.id.clone(), now);
                (
                    "Waiting",
                    Style::new().yellow(),
                    match aws_state {
                        Some(s) => format!("for {what} [now {s}, {elapsed_seconds}s elapsed]"),
                        None => format!("for {what} [{elapsed_seconds}s elapsed]"),
                    },
                )
            }
            Status::Done { physical_id } => (
                done,
                Style::new().green(),
                physical_id
                    .as_deref()
                    .map(|p| format!("({p})"))
                    .unwrap_or_default(),
            ),
            Status::Failed { error } => ("Failed", Style::new().red().bold(), error.clone()),
            Status::Skipped { because } => (
                "Skipped",
                Style::new().dim(),
                format!("because {because} did not succeed"),
            ),
        };
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
        let verb = self.paint(style, &format!("{verb:>10}"));
        self.line(&format!("{stamp} {verb} {} {detail}", event.id));
    }

    fn live(&self, multi: &MultiProgress, event: &Event) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (doing, done) = Self::verbs(event.action);
        let bar = state
            .bars
            .entry(event.id.clone())
            .or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner:.cyan} {prefix:>10.bold} {msg} [{elapsed}]",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                (bar, Instant::now())
            })
            .0
            .clone();
        match &event.status {
            Status::Started => {
                bar.set_prefix(doing);
                bar.set_message(format!("{} {}", event.id, event.kind));
            }
            Status::Waiting { what, state, .. } => {
                bar.set_prefix("Waiting");
                let now = state
                    .as_ref()
                    .map(|s| format!(" (now {s})"))
                    .unwrap_or_default();
                bar.set_message(format!("{} for {what}{now}", event.id));
            }
            Status::Done { physical_id } => {
                bar.set_prefix(done);
                bar.finish_with_message(format!(
                    "{} {}",
                    event.id,
                    physical_id
                        .as_deref()
                        .map(|p| format!("({p})"))
                        .unwrap_or_default()
                ));
            }
            Status::Failed { error } => {
                bar.set_prefix("Failed");
                bar.abandon_with_message(format!("{}: {error}", event.id));
            }
            Status::Skipped { because } => {
                bar.set_prefix("Skipped");
                bar.abandon_with_message(format!("{} because {because} did not succeed", event.id));
            }
        }
    }
}

impl Reporter for Printer {
    fn report(&self, event: Event) {
        match (self.format, &self.live) {
            (OutputFormat::Json, _) => {
                if let Ok(v) = serde_json::to_value(&event) {
                    self.line(&serde_json::json!({ "event": v }).to_string());
                }
            }
            (OutputFormat::Text, Some(multi)) => self.live(multi, &event),
            (OutputFormat::Text, None) => self.plain(&event),
        }
    }
}

/// `techctl dev` speaks through the same printer: its news and the lines
/// of its processes as text, or as JSON lines (`{"event": "dev", …}`,
/// `{"process": …, "line": …}`) with `--output json`.
impl dev::Terminal for Printer {
    fn say(&self, text: &str) {
        match self.format {
            OutputFormat::Text => self.line(text),
            OutputFormat::Json => self
                .line(&serde_json::json!({ "event": "dev", "message": text.trim() }).to_string()),
        }
    }

    fn process_line(&self, process: &str, prefix: &str, line: &str) {
        match self.format {
            OutputFormat::Text => self.line(&format!("{prefix} {line}")),
            OutputFormat::Json => {
                self.line(&serde_json::json!({ "process": process, "line": line }).to_string())
            }
        }
    }

    fn warn(&self, text: &str) {
        Printer::warn(self, text);
    }
}
