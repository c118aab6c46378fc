//! The product service's batch lookup: the only source of names and prices.

use std::time::Duration;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use service_kit::http_client::HttpClient;
use uuid::Uuid;

#[derive(Clone)]
pub struct Catalog {
    client: HttpClient,
    base_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    pub price_cents: i64,
}

/// What the catalog said about a set of ids.
#[derive(Debug, Deserialize)]
pub struct Lookup {
    pub products: Vec<Product>,
    pub unknown: Vec<Uuid>,
    pub inactive: Vec<Uuid>,
}

impl Catalog {
    pub fn new(base_url: &str) -> Catalog {
        Catalog {
            client: HttpClient::new(Duration::from_secs(5)),
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub async fn lookup(&self, ids: &[Uuid]) -> anyhow::Result<Lookup> {
        let url = format!("{}/products/lookup", self.base_url);
        let answer = self
            .client
            .send_json(Method::POST, &url, &[], Some(&json!({ "ids": ids })))
            .await?;
        if answer.status != StatusCode::OK {
            anyhow::bail!(
                "the product service answered {}: {}",
                answer.status,
                answer.text()
            );
        }
        Ok(answer.json()?)
    }
}
