//! Real stand-ins for tests: a moto server (AWS), a private PostgreSQL
//! cluster, a proxy between an AWS client and moto that records every call,
//! injects faults and can refuse what real AWS refuses, signed test tokens,
//! a fake Mercado Pago, and free ports.
//!
//! Nothing here is a mock of our own code: moto answers the real AWS APIs,
//! and the proxy speaks plain HTTP to both sides.

pub mod browser;
mod cbor;
pub mod github;
pub mod http;
pub mod jwt;
pub mod moto;
pub mod postgres;
pub mod proxy;
pub mod registry;
pub mod router;
pub mod strict;

use std::net::TcpListener;
use std::path::PathBuf;

pub use localkit::mercadopago;
pub use localkit::mercadopago::Sandbox as FakeMercadoPago;
pub use moto::Moto;
pub use postgres::{Postgres, postgres};
pub use proxy::{Fault, FaultProxy, StrictAws};
pub use strict::{Refusal, Strictness};

/// A TCP port that was free a moment ago on the loopback interface, and
/// never handed out before in this process. The kernel may give a port
/// back as soon as it is released: two tests starting servers at once
/// (moto takes seconds to bind) could otherwise both get it, and one would
/// talk to the other's server.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("cannot bind a loopback port to find a free one");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The workspace root, where `.venv/` lives once `.ci/run` or the README
/// set-up has made it.
///
/// Found from the running test's package (cargo sets `CARGO_MANIFEST_DIR`
/// when it runs a test), not from where testkit was compiled: two
/// checkouts sharing one target folder share testkit's build, and a path
/// compiled in would send one checkout's tests to the other's files.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|manifest| manifest.contains("[workspace]"))
        })
        .map(PathBuf::from)
        .unwrap_or(start)
}
