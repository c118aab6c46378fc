//! The services' binaries: built from the workspace with cargo, in the
//! release profile unless told otherwise (a no-op when nothing changed),
//! found in cargo's target folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Why the services' binaries could not be had: what is wrong and what to
/// do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// The cargo profile the services are built in: `release` for what runs
/// on AWS; `dev` reuses the dependencies a debug build (the tests') made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile(String);

impl Profile {
    pub fn release() -> Profile {
        Profile("release".to_string())
    }

    /// A profile by cargo's name for it: `release`, `dev`, or one the
    /// workspace defines.
    pub fn named(name: &str) -> Result<Profile, BuildError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(BuildError(format!(
                "{name:?} is not a cargo profile name\n  use release, dev, or a profile of the workspace's Cargo.toml"
            )));
        }
        Ok(Profile(name.to_string()))
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// The folder under cargo's target folder holding its output.
    fn folder(&self) -> &str {
        match self.0.as_str() {
            "dev" | "test" => "debug",
            "bench" => "release",
            other => other,
        }
    }
}

impl Default for Profile {
    fn default() -> Profile {
        Profile::release()
    }
}

/// The crate (and binary) of a blueprint service.
pub fn package_of(service: &str) -> String {
    format!("{service}-service")
}

/// The folder above `start` (or `start` itself) whose Cargo.toml is the
/// workspace holding the services.
pub fn find_source(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        (manifest.contains("[workspace]") && dir.join("services").is_dir())
            .then(|| dir.to_path_buf())
    })
}

/// Builds the services (unless `build` is false) and answers where each
/// binary is; `progress` hears cargo's "Compiling …" and "Finished …" lines.
pub async fn binaries(
    source: &Path,
    services: &[String],
    build: bool,
    profile: &Profile,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    for service in services {
        let manifest = source.join("services").join(service).join("Cargo.toml");
        if !manifest.is_file() {
            return Err(BuildError(format!(
                "the blueprint's service {service:?} has no crate at {}\n  add the crate {} there, or remove the service from the blueprint",
                manifest.display(),
                package_of(service)
            )));
        }
    }
    if build {
        cargo_build(source, services, profile, progress).await?;
    }
    let folder = target_dir(source).await?.join(profile.folder());
    let mut found = BTreeMap::new();
    for service in services {
        let binary = folder.join(package_of(service));
        if !binary.is_file() {
            return Err(BuildError(format!(
                "{} is not built\n  run without --no-build, or build it first: cargo build --profile {} --bin {}",
                binary.display(),
                profile.name(),
                package_of(service)
            )));
        }
        found.insert(service.clone(), binary);
    }
    Ok(found)
}

async fn cargo_build(
    source: &Path,
    services: &[String],
    profile: &Profile,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), BuildError> {
    let mut command = tokio::process::Command::new(cargo());
    command
        .current_dir(source)
        .args(["build", "--profile", profile.name(), "--color", "never"]);
    // By binary, not by package (-p): the features are then resolved for
    // the whole workspace, as the tests build them, and cargo reuses one
    // build of the dependencies instead of making a second.
    for service in services {
        command.args(["--bin", &package_of(service)]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            BuildError(format!(
                "cannot run cargo to build the services: {e}\n  install Rust (https://rustup.rs), or build them yourself and pass --no-build"
            ))
        })?;
    let mut output = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // Progress lines as they come; the rest only if the build fails.
            let trimmed = line.trim_start();
            if trimmed.starts_with("Compiling") || trimmed.starts_with("Finished") {
                progress(trimmed);
            }
            output.push(line);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| BuildError(format!("cargo did not finish: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let tail: Vec<&String> = output.iter().rev().take(30).collect();
    Err(BuildError(format!(
        "the services did not build:\n{}",
        tail.into_iter()
            .rev()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    )))
}

/// cargo's target folder for this workspace (it honours CARGO_TARGET_DIR).
async fn target_dir(source: &Path) -> Result<PathBuf, BuildError> {
    let out = tokio::process::Command::new(cargo())
        .current_dir(source)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| BuildError(format!("cannot run cargo metadata: {e}")))?;
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        BuildError(format!(
            "cargo metadata failed in {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    })?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| BuildError("cargo metadata did not name a target directory".into()))
}

/// The cargo that built us when there is one (`CARGO`), else the PATH's.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_found_in_cargos_folder_for_it() {
        assert_eq!(Profile::release().folder(), "release");
        assert_eq!(Profile::named("dev").unwrap().folder(), "debug");
        assert_eq!(Profile::named("ci-fast").unwrap().folder(), "ci-fast");
        let error = Profile::named("../release").unwrap_err().to_string();
        assert!(error.contains("not a cargo profile name"), "{error}");
    }
}
