use service_kit::config::Env;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::telemetry::init("product-service");
    let config = match product_service::Config::from_env(&Env::process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match product_service::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "product service stopped");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
