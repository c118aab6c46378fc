//! `techctl completions SHELL` and `techctl man`: what shells and `man`
//! read, made from the same command line definition as `--help`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::CliError;
use crate::printer::Printer;

const NAME: &str = "techctl";

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), NAME, &mut script);
    write_out(&script)
}

/// The top page on standard output; or, into `dir`, that page and one per
/// command (and per subcommand: `techctl-keys-rotate.1`).
pub fn man(dir: Option<&Path>, printer: &Printer) -> Result<ExitCode, CliError> {
    let command = Cli::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        render(&command, &mut page)?;
        return write_out(&page);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::User(format!("cannot create {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    write_pages(&command, NAME, dir, &mut written)?;
    printer.json(&serde_json::json!({ "pages": written }));
    printer.text(&format!(
        "Wrote {} manual pages into {}: `man techctl` once it is on MANPATH.",
        written.len(),
        dir.display()
    ));
    Ok(ExitCode::SUCCESS)
}

fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> Result<(), CliError> {
    let command = command
        .clone()
        .version(env!("CARGO_PKG_VERSION"))
        .display_name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut page = Vec::new();
    render(&command, &mut page)?;
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, page)
        .map_err(|e| CliError::User(format!("cannot write {}: {e}", file.display())))?;
    written.push(file.display().to_string());
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

fn render(command: &clap::Command, out: &mut Vec<u8>) -> Result<(), CliError> {
    clap_mangen::Man::new(command.clone())
        .render(out)
        .map_err(|e| CliError::User(format!("cannot render the manual page: {e}")))
}

fn write_out(bytes: &[u8]) -> Result<ExitCode, CliError> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
    Ok(ExitCode::SUCCESS)
}
