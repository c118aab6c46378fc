//! The strict proxy in front of a running moto server: what real AWS
//! refuses is refused, and the SDK's CloudWatch protocol (RPC v2 CBOR),
//! which moto does not read, reaches it as JSON. With a SCALE, AWS's clock
//! is played back at that scale, for benchmarks that want AWS's waits
//! without AWS. Prints its URL, then serves until it is interrupted.
//!
//!   aws-proxy MOTO_URL [SCALE]      e.g. http://127.0.0.1:5000 0.1

use std::io::Write;

use testkit::{FaultProxy, Strictness};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: aws-proxy MOTO_URL [SCALE] (e.g. http://127.0.0.1:5000 0.1)");
        std::process::exit(2);
    };
    let strictness = match args.next() {
        None => Strictness::new(),
        Some(scale) => match scale.parse() {
            Ok(s) if s > 0.0 && s <= 1.0 => Strictness::new().timed(s),
            _ => {
                eprintln!("SCALE must be a number above 0 and at most 1, not {scale:?}");
                std::process::exit(2);
            }
        },
    };
    let proxy = FaultProxy::start_strict(&target, strictness).await;
    println!("{}", proxy.url);
    let _ = std::io::stdout().flush();
    // Interrupted or terminated: say what was refused, then stop.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    let refused = proxy.strict_refusals();
    eprintln!(
        "aws-proxy: {} calls, {} refused as AWS would",
        proxy.operations().len(),
        refused.len()
    );
}
