//! Where the local system's output goes: every line of every process into
//! its own file under `.techctl/logs/`, and interleaved on the terminal
//! behind the name of the process that wrote it.

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

/// Hands out one [`Sink`] per process.
#[derive(Debug)]
pub struct Console {
    dir: PathBuf,
    width: usize,
    colors: bool,
    next_color: Mutex<usize>,
}

/// The output of one process.
pub struct Sink {
    prefix: String,
    file: Mutex<Option<File>>,
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
    pub fn new(dir: PathBuf, width: usize) -> Console {
        Console {
            dir,
            width,
            colors: console::colors_enabled(),
            next_color: Mutex::new(0),
        }
    }

    /// The sink of `name`, appending to `<dir>/<name>.log`.
    pub fn sink(&self, name: &str) -> Arc<Sink> {
        let path = self.dir.join(format!("{name}.log"));
        let file = File::options().create(true).append(true).open(&path);
        if let Err(e) = &file {
            eprintln!("warning: cannot write {}: {e}", path.display());
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
            prefix,
            file: Mutex::new(file.ok()),
        })
    }

    /// A line of techctl's own, on the terminal only.
    pub fn say(&self, text: &str) {
        println!("{text}");
    }
}

impl Sink {
    /// A line into the log file and onto the terminal.
    pub fn line(&self, text: &str) {
        self.to_file(text);
        println!("{} {text}", self.prefix);
    }

    /// A line into the log file only (request logs, say).
    pub fn to_file(&self, text: &str) {
        if let Some(file) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = writeln!(file, "{text}");
        }
    }
}
