//! An order's payment QR code as SVG, drawn here from the payment's
//! `qr_data`: the kiosk shows it without any outside service seeing it,
//! and only the order's customer (or staff) can have it drawn.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use service_kit::auth::Caller;
use service_kit::error::{ApiError, ApiResult};
use service_kit::extract::Path;
use uuid::Uuid;

use crate::AppState;

/// The QR code of an order's payment, as SVG (its customer or staff).
#[utoipa::path(
    get, path = "/orders/{id}/qr.svg",
    responses(
        (status = 200, content_type = "image/svg+xml", body = String, description = "The Pix QR code, black on white with its quiet zone"),
        (status = 404, body = service_kit::error::Problem, description = "No such order (or someone else's), or no QR code yet"),
    ),
    security(("bearer" = []))
)]
pub async fn order_qr(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT customer_id, qr_data FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    let qr_data = match row {
        // Someone else's order is as invisible as a missing one.
        Some((owner, qr)) if caller.is_staff() || owner == caller.subject => qr,
        _ => return Err(ApiError::NotFound(format!("no order {id}"))),
    };
    let qr_data = qr_data.ok_or_else(|| {
        ApiError::NotFound(format!(
            "order {id} has no QR code yet: the payment service is making it"
        ))
    })?;
    let svg = draw(&qr_data).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "the QR data of order {id} ({} bytes) does not fit a QR code",
            qr_data.len()
        ))
    })?;
    let mut response = svg.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // An SVG opened on its own is a document: it may run nothing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// `text` as a QR code in SVG: black on white with the quiet zone, medium
/// error correction (what Pix readers expect).
pub fn draw(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pix_code_is_drawn_as_svg() {
        let pix = "00020101021243650016COM.MERCADOLIBRE02013063638f1192a-5fd1-4180-a180-8bcae3556bc35204000053039865802BR5925IZABEL AAAA DE MELO6007BARUERI62070503***63040B6D";
        let svg = super::draw(pix).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{svg:.80}"
        );
        assert!(
            super::draw(&"9".repeat(8000)).is_none(),
            "beyond any QR code"
        );
    }
}
