//! JSON over plain HTTP to the local system (the services, the gateway,
//! the sandbox): all on loopback, so no TLS; the client is techctl's one
//! (`httpkit`).

use std::time::Duration;

use httpkit::HttpClient;
use hyper::Method;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Local {
    client: HttpClient,
}

/// The status and JSON body (`Null` when there is none) of an answer.
pub type Answer = (u16, Value);

impl Default for Local {
    fn default() -> Local {
        Local {
            client: HttpClient::new(Duration::from_secs(30)),
        }
    }
}

impl Local {
    pub fn new() -> Local {
        Local::default()
    }

    /// Calls `url`; an error says why nothing answered.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| ("authorization", b))
            .into_iter()
            .collect();
        let answer = self
            .client
            .send_json(method, url, &headers, body)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            answer.status.as_u16(),
            serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        ))
    }
}
