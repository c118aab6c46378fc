//! techctl: provisions the ordering system's AWS home straight through the
//! AWS SDK, deploys it, and runs it locally. This crate is the command
//! line: arguments, settings, the commands and what they print; the work
//! is the other crates' (see ARCHITECTURE.md).
//!
//! blueprint (TOML) → [`blueprint`] → [`engine::plan::expand`] → desired
//! resources; AWS (by tags) → [`stack::observe`] → observed resources;
//! both → [`engine::plan::compute`] → a plan → [`engine::apply`] with the
//! [`aws::AwsProvider`] → events → [`printer`].

pub mod cli;
pub mod commands;
pub mod deploy;
pub mod error;
pub mod keystore;
pub mod printer;
pub mod render;
pub mod secretstore;
pub mod stack;
pub mod table;

use std::process::ExitCode;

use clap::Parser;

/// The whole program: parse the command line and run it.
pub fn main() -> ExitCode {
    commands::run(cli::Cli::parse())
}
