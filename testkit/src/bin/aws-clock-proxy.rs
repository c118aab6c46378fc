//! The strict proxy in front of a running moto server, with AWS's clock
//! played back at a scale: for benchmarks that want AWS's waits without
//! AWS. Prints its URL, then serves until it is killed.
//!
//!   aws-clock-proxy MOTO_URL SCALE      e.g. http://127.0.0.1:5000 0.1

use std::io::Write;

use testkit::{FaultProxy, Strictness};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(scale)) = (args.next(), args.next()) else {
        eprintln!("usage: aws-clock-proxy MOTO_URL SCALE (e.g. http://127.0.0.1:5000 0.1)");
        std::process::exit(2);
    };
    let scale: f64 = match scale.parse() {
        Ok(s) if s > 0.0 && s <= 1.0 => s,
        _ => {
            eprintln!("SCALE must be a number above 0 and at most 1, not {scale:?}");
            std::process::exit(2);
        }
    };
    let proxy = FaultProxy::start_strict(&target, Strictness::new().timed(scale)).await;
    println!("{}", proxy.url);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    let refused = proxy.strict_refusals();
    eprintln!(
        "aws-clock-proxy: {} calls, {} refused as AWS would",
        proxy.operations().len(),
        refused.len()
    );
}
