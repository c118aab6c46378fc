use service_kit::config::Env;
use service_kit::keys::KeySource;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::telemetry::init("product-service");
    let env = Env::process();
    let settings = match product_service::Config::from_env(&env) {
        Ok(config) => KeySource::from_env(&env).await.map(|keys| (config, keys)),
        Err(e) => Err(e),
    };
    let (config, keys) = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match product_service::run(config, keys).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "product service stopped");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
