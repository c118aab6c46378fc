//! techctl's integration tests, in one binary: the engine against moto
//! behind testkit's strict proxy, the real `techctl` binary as a user runs
//! it, images pushed to a real registry, key rotation, and `techctl dev`
//! end to end. Each test starts what it needs (moto, PostgreSQL, the
//! registry) itself.

mod architecture;
mod cli;
mod clock;
mod common;
mod contracts;
mod deploy;
mod deploy_on_push;
mod dev;
mod down;
mod environments;
mod events;
mod faults;
mod image;
mod keys;
mod lock;
mod logs;
mod platform;
mod screens;
mod up;
mod verify;
