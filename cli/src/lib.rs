//! techctl: provisions the ordering system's AWS home straight through the
//! AWS SDK, and runs it.
//!
//! blueprint (TOML) → [`blueprint`] → [`plan::expand`] → desired resources;
//! AWS (by tags) → [`stack::observe`] → observed resources;
//! both → [`plan::compute`] → a [`plan::Plan`] → [`apply`] → events → [`printer`].

pub mod apply;
#[macro_use]
pub mod aws;
pub mod blueprint;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod dev;
pub mod error;
pub mod image;
pub mod keys;
pub mod plan;
pub mod printer;
pub mod stack;
pub mod verify;

use std::process::ExitCode;

use clap::Parser;

/// The whole program: parse the command line and run it.
pub fn main() -> ExitCode {
    commands::run(cli::Cli::parse())
}
