//! The product service's integration tests, in one binary: the router
//! against a private PostgreSQL (`api`) and the real binary as a process
//! on a socket (`process`).

mod api;
mod process;
