use service_kit::config::Env;
use service_kit::keys::KeySource;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = async {
        let env = Env::process();
        Ok((
            order_service::Config::from_env(&env)?,
            KeySource::from_env(&env).await?,
        ))
    };
    service_kit::server::main("order-service", settings, |(config, keys)| {
        order_service::run(config, keys)
    })
    .await
}
