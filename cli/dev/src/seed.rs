//! What a fresh local system starts with: the menu of `menu.toml` in an
//! empty catalog, put there through the gateway as the employee would.

use std::time::{Duration, Instant};

use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::DevError;
use crate::home::Credentials;
use crate::http::Local;

#[derive(Debug, Deserialize)]
struct Menu {
    product: Vec<MenuItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MenuItem {
    pub name: String,
    pub category: String,
    pub description: String,
    pub price_cents: i64,
    pub preparation_minutes: i32,
}

/// The shipped menu.
pub fn menu() -> Vec<MenuItem> {
    toml::from_str::<Menu>(include_str!("menu.toml"))
        .map(|m| m.product)
        .unwrap_or_default()
}

/// Waits until `url` answers `/health/ready` with 200.
pub async fn wait_ready(
    http: &Local,
    service: &str,
    url: &str,
    deadline: Instant,
) -> Result<(), DevError> {
    let probe = format!("{url}/health/ready");
    loop {
        if let Ok((200, _)) = http.call(Method::GET, &probe, None, None).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DevError::new(format!(
                "the {service} service was not ready in time ({probe} never answered 200); see .techctl/logs/{service}.log"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An employee token, through the gateway.
pub async fn employee_token(
    http: &Local,
    gateway: &str,
    credentials: &Credentials,
) -> Result<String, DevError> {
    let body =
        json!({"email": credentials.employee_email, "password": credentials.employee_password});
    let (status, answer) = http
        .call(
            Method::POST,
            &format!("{gateway}/auth/employee/token"),
            None,
            Some(&body),
        )
        .await
        .map_err(DevError::new)?;
    match answer["access_token"].as_str() {
        Some(token) if status == 200 => Ok(token.to_string()),
        _ => Err(DevError::new(format!(
            "the employee {} cannot sign in ({status}: {answer})\n  the user database may hold another password for them: delete .techctl/ to start afresh",
            credentials.employee_email
        ))),
    }
}

/// Puts the menu into the catalog when it is empty; answers how many
/// products were added.
pub async fn seed_menu(http: &Local, gateway: &str, token: &str) -> Result<usize, DevError> {
    let (status, page) = http
        .call(
            Method::GET,
            &format!("{gateway}/products?per_page=1"),
            None,
            None,
        )
        .await
        .map_err(DevError::new)?;
    if status != 200 {
        return Err(DevError::new(format!(
            "cannot read the catalog ({status}: {page})"
        )));
    }
    if page["total"].as_i64().unwrap_or(0) > 0 {
        return Ok(0);
    }
    let mut added = 0;
    for item in menu() {
        let body = serde_json::to_value(&item).unwrap_or(Value::Null);
        let (status, answer) = http
            .call(
                Method::POST,
                &format!("{gateway}/products"),
                Some(token),
                Some(&body),
            )
            .await
            .map_err(DevError::new)?;
        match status {
            201 => added += 1,
            409 => {}
            _ => {
                return Err(DevError::new(format!(
                    "cannot add {} to the catalog ({status}: {answer})",
                    item.name
                )));
            }
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menu_fills_all_four_categories() {
        let menu = menu();
        assert!(menu.len() >= 12, "{menu:?}");
        for category in ["Lanche", "Acompanhamento", "Bebida", "Sobremesa"] {
            assert!(
                menu.iter().filter(|p| p.category == category).count() >= 3,
                "{category}"
            );
        }
        assert!(menu.iter().all(|p| p.price_cents > 0));
    }
}
