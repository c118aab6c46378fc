//! Environments: one blueprint, several stacks. A blueprint declares
//! `[env.NAME]` tables whose values override the base ones (`[env.prod]
//! network.nat = "per-az"`, `[env.prod.services.order] max = 10`); the
//! environment chosen with `--env NAME` is merged over the base before the
//! blueprint is read, so every rule checks the values the stack will get,
//! and a problem in an overridden value points at its line in the
//! environment's table.
//!
//! Each environment is its own stack, named `STACK-NAME` unless it names
//! itself (`stack.name`): its own tags, secrets and resources, so nothing
//! run for one environment can reach another's.

use serde::Serialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{Problem, line_column};

/// The environment a blueprint was read for, and what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub name: String,
    /// The base values it replaced, in the order of the file.
    pub overrides: Vec<Override>,
}

/// One value the environment set: its dotted field and its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Override {
    pub field: String,
    pub line: usize,
}

impl Environment {
    /// Whether the environment set `field` itself.
    pub fn sets(&self, field: &str) -> bool {
        self.overrides.iter().any(|o| o.field == field)
    }
}

/// The table that holds the environments.
const ENV: &str = "env";

/// Takes the `[env]` table out of `root` and, when `chosen` names one of
/// its environments, merges that environment over the base values.
pub(crate) fn apply(
    root: &mut DeTable<'_>,
    chosen: Option<&str>,
    text: &str,
) -> Result<Option<Environment>, Vec<Problem>> {
    let declared = root.remove(ENV);
    let Some(name) = chosen else {
        return Ok(None);
    };
    let at = |offset: usize, field: String, message: String, allowed: Option<String>| {
        Problem::at(text, offset, field, message, allowed)
    };
    if !valid_name(name) {
        return Err(vec![at(
            0,
            String::new(),
            format!("`{name}` is not an environment name"),
            Some("1 to 16 lowercase letters, digits or single hyphens, a letter first, not a hyphen last".into()),
        )]);
    }
    let mut environments = match declared.map(Spanned::into_inner) {
        Some(DeValue::Table(table)) => table,
        Some(_) => {
            return Err(vec![at(
                0,
                ENV.into(),
                "must be a table of environments".into(),
                None,
            )]);
        }
        None => DeTable::default(),
    };
    let names: Vec<String> = environments
        .keys()
        .map(|k| k.get_ref().to_string())
        .collect();
    let Some(chosen) = environments.remove(name) else {
        let declared = if names.is_empty() {
            "it declares none".to_string()
        } else {
            format!("it declares {}", names.join(", "))
        };
        return Err(vec![at(
            0,
            String::new(),
            format!("the environment `{name}` is not in the blueprint: {declared}"),
            Some(format!(
                "add an [env.{name}] table with the values that differ, or pick a declared one"
            )),
        )]);
    };
    let span = chosen.span();
    let DeValue::Table(overrides) = chosen.into_inner() else {
        return Err(vec![at(
            span.start,
            format!("{ENV}.{name}"),
            "must be a table of the values that differ from the base".into(),
            None,
        )]);
    };
    let base_name = string_at(root, &["stack", "name"]).map(str::to_string);
    let mut environment = Environment {
        name: name.to_string(),
        overrides: Vec::new(),
    };
    let mut problems = Vec::new();
    merge(
        root,
        overrides,
        "",
        &mut |field, offset| {
            environment.overrides.push(Override {
                field,
                line: line_column(text, offset).0,
            })
        },
        &mut |field, offset| {
            problems.push(at(
                offset,
                format!("{ENV}.{name}.{field}"),
                "names a service the base blueprint does not declare".to_string(),
                Some(
                    "an environment changes the base's services; add a service to the base".into(),
                ),
            ))
        },
    );
    // Its stack must be its own: never the base's, nor another one's.
    if let Some(base) = &base_name {
        let own = string_at(root, &["stack", "name"])
            .filter(|_| environment.sets("stack.name"))
            .map_or_else(|| stack_name(base, name), str::to_string);
        let others = names.iter().filter(|other| *other != name).map(|other| {
            let explicit = environments
                .get(other.as_str())
                .and_then(|e| match e.get_ref() {
                    DeValue::Table(t) => string_at(t, &["stack", "name"]),
                    _ => None,
                });
            (
                format!("the environment {other}"),
                explicit.map_or_else(|| stack_name(base, other), str::to_string),
            )
        });
        let taken = std::iter::once(("the base blueprint".to_string(), base.clone()))
            .chain(others)
            .find(|(_, stack)| *stack == own);
        if let Some((whose, _)) = taken {
            problems.push(at(
                span.start,
                format!("{ENV}.{name}"),
                format!("its stack {own} is also the stack of {whose}: an environment must be a stack of its own"),
                Some(format!("another stack.name, or none (it is then {})", stack_name(base, name))),
            ));
        }
    }
    if problems.is_empty() {
        // The file's order, not the keys' (TOML tables are read sorted).
        environment.overrides.sort_by_key(|o| o.line);
        Ok(Some(environment))
    } else {
        Err(problems)
    }
}

/// Merges `overrides` into `base`: tables key by key, any other value
/// replaced whole (an array included). New services are refused: an
/// environment changes the system, it does not grow another one.
fn merge<'i>(
    base: &mut DeTable<'i>,
    overrides: DeTable<'i>,
    path: &str,
    set: &mut impl FnMut(String, usize),
    refuse: &mut impl FnMut(String, usize),
) {
    for (key, value) in overrides {
        let field = if path.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{path}.{}", key.get_ref())
        };
        let offset = value.span().start;
        let existing = base.get_mut(key.get_ref().as_ref());
        match (existing.map(|v| v.get_mut()), value.get_ref()) {
            (Some(DeValue::Table(inner)), DeValue::Table(_)) => {
                let DeValue::Table(table) = value.into_inner() else {
                    unreachable!("matched as a table above")
                };
                merge(inner, table, &field, set, refuse);
            }
            (None, _) if path == "services" => refuse(field, offset),
            _ => {
                set(field, offset);
                base.insert(key, value);
            }
        }
    }
}

/// `a-z` first, then `a-z`, `0-9` or single hyphens, not ending with one,
/// at most 16: it becomes part of every resource name, which AWS limits
/// (a target group's to 32, an RDS identifier to no `--`).
fn valid_name(name: &str) -> bool {
    (1..=16).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The string at `path` in `table`, if it is one.
fn string_at<'a>(table: &'a DeTable<'_>, path: &[&str]) -> Option<&'a str> {
    let (last, tables) = path.split_last()?;
    let mut at = table;
    for key in tables {
        match at.get(*key)?.get_ref() {
            DeValue::Table(inner) => at = inner,
            _ => return None,
        }
    }
    match at.get(*last)?.get_ref() {
        DeValue::String(text) => Some(text.as_ref()),
        _ => None,
    }
}

/// The stack name of `environment` when it does not name itself.
pub(crate) fn stack_name(base: &str, environment: &str) -> String {
    format!("{base}-{environment}")
}
