//! Where the local system's output goes: every line of every process into
//! its own file under `.techctl/logs/`, and to the [`Terminal`] (techctl's
//! printer: interleaved behind the name of the process that wrote it, or
//! as JSON lines).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use console::Style;

const COLORS: [console::Color; 6] = [
    console::Color::Cyan,
    console::Color::Green,
    console::Color::Yellow,
    console::Color::Magenta,
    console::Color::Blue,
    console::Color::Red,
];

/// Where `techctl dev` tells what happens: techctl's printer, which shows
/// it to people or writes it as JSON lines for scripts.
pub trait Terminal: Send + Sync {
    /// techctl dev's own news: building, ready, stopping.
    fn say(&self, text: &str);
    /// A line `process` wrote; `prefix` is its name, padded and coloured,
    /// for a terminal.
    fn process_line(&self, process: &str, prefix: &str, line: &str);
    /// Something went wrong beside the run (a log file cannot be written).
    fn warn(&self, text: &str);
}

/// Hands out one [`Sink`] per process.
pub struct Console {
    dir: PathBuf,
    width: usize,
    colors: bool,
    next_color: Mutex<usize>,
    terminal: Arc<dyn Terminal>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("dir", &self.dir).finish()
    }
}

/// The output of one process.
pub struct Sink {
    process: String,
    prefix: String,
    file: Mutex<Option<File>>,
    terminal: Arc<dyn Terminal>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Console {
    /// `width` is the longest process name, to line the prefixes up.
    pub fn new(dir: PathBuf, width: usize, terminal: Arc<dyn Terminal>) -> Console {
        Console {
            dir,
            width,
            colors: console::colors_enabled(),
            next_color: Mutex::new(0),
            terminal,
        }
    }

    /// The sink of `name`, appending to `<dir>/<name>.log`.
    pub fn sink(&self, name: &str) -> Arc<Sink> {
        let path = self.dir.join(format!("{name}.log"));
        let file = File::options().create(true).append(true).open(&path);
        if let Err(e) = &file {
            self.terminal
                .warn(&format!("cannot write {}: {e}", path.display()));
        }
        let padded = format!("{name:>width$} |", width = self.width);
        let prefix = if self.colors {
            let mut next = self.next_color.lock().unwrap_or_else(|p| p.into_inner());
            let color = COLORS[*next % COLORS.len()];
            *next += 1;
            Style::new().fg(color).apply_to(padded).to_string()
        } else {
            padded
        };
        Arc::new(Sink {
            process: name.to_string(),
            prefix,
            file: Mutex::new(file.ok()),
            terminal: self.terminal.clone(),
        })
    }

    /// A line of techctl's own, on the terminal only.
    pub fn say(&self, text: &str) {
        self.terminal.say(text);
    }
}

impl Sink {
    /// A line into the log file and onto the terminal.
    pub fn line(&self, text: &str) {
        self.to_file(text);
        self.terminal
            .process_line(&self.process, &self.prefix, text);
    }

    /// A line into the log file only (request logs, say).
    pub fn to_file(&self, text: &str) {
        if let Some(file) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = writeln!(file, "{text}");
        }
    }
}

/// Lines on standard output, for tests of the parts that print.
#[cfg(test)]
pub struct Plain;

#[cfg(test)]
impl Terminal for Plain {
    fn say(&self, text: &str) {
        println!("{text}");
    }

    fn process_line(&self, _: &str, prefix: &str, line: &str) {
        println!("{prefix} {line}");
    }

    fn warn(&self, text: &str) {
        println!("warning: {text}");
    }
}
