//! Logs: readable on a terminal, one JSON object per line with
//! `LOG_FORMAT=json` (for CloudWatch). `RUST_LOG` filters as usual.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) does nothing.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "info,{}=info,tower_http=info",
            service.replace('-', "_")
        ))
    });
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
