use service_kit::config::Env;
use service_kit::keys::KeySource;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::telemetry::init("user-service");
    let env = Env::process();
    let settings = match user_service::Config::from_env(&env) {
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
    match user_service::run(config, keys).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "user service stopped");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
