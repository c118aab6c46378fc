//! The blueprint: a TOML description of one stack, parsed and validated
//! before anything talks to AWS.
//!
//! Parsing (serde) catches unknown and missing fields and wrong types;
//! [`validate`] catches what serde cannot see (CIDR arithmetic, duplicate
//! ports and paths, Fargate sizes). Every problem is reported with the file,
//! line and column, the field's dotted path, and what is allowed, and all of
//! them are reported at once so a user fixes the file in one pass.
//!
//! Validation also checks what AWS would refuse only halfway through `up`:
//! the names the stack's resources get ([`names`]), the size of the subnets
//! the load balancer sits in, and whether the database instance takes every
//! task's connections ([`connections`]).

pub mod connections;
pub mod engine_version;
pub mod environment;
mod model;
pub mod names;
pub mod operator;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;

/// One problem in a blueprint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `network.public_subnets[1]`.
    pub field: String,
    pub message: String,
    /// What the field accepts, when that can be said briefly.
    pub allowed: Option<String>,
}

impl Problem {
    /// A problem with what is written at byte `offset` of `text`.
    pub(crate) fn at(
        text: &str,
        offset: usize,
        field: String,
        message: String,
        allowed: Option<String>,
    ) -> Problem {
        let (line, column) = line_column(text, offset);
        Problem {
            line,
            column,
            field,
            message,
            allowed,
        }
    }
}

/// Everything wrong with one blueprint file.
#[derive(Debug, thiserror::Error)]
pub struct BlueprintError {
    pub file: PathBuf,
    /// The environment it was read for, if any.
    pub environment: Option<String>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for BlueprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let environment = self
            .environment
            .as_ref()
            .map(|e| format!(" (environment {e})"))
            .unwrap_or_default();
        writeln!(
            f,
            "the blueprint {}{environment} has {count} problem{}; nothing was sent to AWS:",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "  {}:{}:{}: ", self.file.display(), p.line, p.column)?;
            if p.field.is_empty() {
                writeln!(f, "{}", p.message)?;
            } else {
                writeln!(f, "{}: {}", p.field, p.message)?;
            }
            if let Some(allowed) = &p.allowed {
                writeln!(f, "      allowed: {allowed}")?;
            }
        }
        Ok(())
    }
}

/// Reads, parses and validates the blueprint at `path`.
pub fn load(path: &Path) -> Result<Blueprint, LoadError> {
    load_in(path, None)
}

/// Reads, parses and validates the blueprint at `path` for `environment`
/// (its `[env.NAME]` values over the base ones), or the base.
pub fn load_in(path: &Path, environment: Option<&str>) -> Result<Blueprint, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_in(path, &text, environment).map_err(LoadError::Invalid)
}

/// Parses and validates blueprint text; `path` is used only in messages.
pub fn parse(path: &Path, text: &str) -> Result<Blueprint, BlueprintError> {
    parse_in(path, text, None)
}

/// [`parse`] for `environment`, or the base.
pub fn parse_in(
    path: &Path,
    text: &str,
    environment: Option<&str>,
) -> Result<Blueprint, BlueprintError> {
    let fail = |problems| BlueprintError {
        file: path.to_path_buf(),
        environment: environment.map(str::to_string),
        problems,
    };
    let serde_failure = |e: toml::de::Error| {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = line_column(text, offset);
        let key = text.lines().nth(line - 1).and_then(key_of_line);
        fail(vec![serde_problem(
            e.message(),
            line,
            column,
            table_at(text, offset),
            key,
        )])
    };
    let mut root = toml::de::DeTable::parse(text).map_err(serde_failure)?;
    let chosen = environment::apply(root.get_mut(), environment, text).map_err(fail)?;
    let mut blueprint: Blueprint =
        serde::Deserialize::deserialize(toml::de::Deserializer::from(root))
            .map_err(serde_failure)?;
    if let Some(chosen) = &chosen
        && !chosen.sets("stack.name")
    {
        let base = &blueprint.stack.name;
        blueprint.stack.name = toml::Spanned::new(
            base.span(),
            environment::stack_name(base.get_ref(), &chosen.name),
        );
    }
    let derived = chosen
        .as_ref()
        .filter(|c| !c.sets("stack.name"))
        .map(|c| (c.name.clone(), blueprint.stack_name().to_string()));
    blueprint.environment = chosen;
    let mut problems = validate::check(&blueprint, text);
    // A name made from the base's and the environment's is blamed on the
    // base's line; say where the rest of it came from.
    if let Some((environment, stack)) = derived {
        for p in problems
            .iter_mut()
            .filter(|p| p.field == "stack.name" || p.message.contains(&stack))
        {
            p.message.push_str(&format!(
                " (the environment {environment} makes it {stack})"
            ));
        }
    }
    if problems.is_empty() {
        Ok(blueprint)
    } else {
        Err(fail(problems))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot read the blueprint {}: {source}\n  pass the right file with --blueprint PATH",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(BlueprintError),
}

/// Turns a serde message into a problem, splitting off the "expected ..."
/// list serde appends so it shows as what is allowed, and naming the field
/// from the table it sits in and the name serde quotes.
fn serde_problem(
    message: &str,
    line: usize,
    column: usize,
    table: Option<&str>,
    key: Option<&str>,
) -> Problem {
    let message = message.trim();
    let (message, allowed) = match message.split_once(", expected ") {
        Some((m, allowed)) => (m.to_string(), Some(allowed.to_string())),
        None => (message.to_string(), None),
    };
    // serde quotes the field when it is unknown or missing; otherwise the
    // key on the offending line is the field.
    let quoted = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains(" field `"))
        .or(key);
    let field = match (table, quoted) {
        (Some(table), Some(name)) => format!("{table}.{name}"),
        (Some(table), None) => table.to_string(),
        (None, Some(name)) => name.to_string(),
        (None, None) => String::new(),
    };
    Problem {
        line,
        column,
        field,
        message,
        allowed,
    }
}

/// The key of a `key = value` line.
fn key_of_line(line: &str) -> Option<&str> {
    let key = line.split_once('=')?.0.trim();
    (!key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then_some(key)
}

/// The `[table]` whose body holds `offset` (or whose header it is).
fn table_at(text: &str, offset: usize) -> Option<&str> {
    let line_end = text[offset.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| offset + i);
    text[..line_end]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
