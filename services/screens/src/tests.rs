use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    routes::<()>()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body(response: Response) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[tokio::test]
async fn every_screen_is_served_with_its_policy_and_revalidates_with_a_304() {
    for page in PAGES {
        let path = format!("/screens/{page}");
        let first = get(&path, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let h = first.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let again = get(
            &path,
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        // A client without gzip gets the plain page, under another tag.
        let plain = get(&path, &[("if-none-match", &etag)]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let text = String::from_utf8(body(plain).await).unwrap();
        assert!(text.contains("lang=\"pt-BR\""), "{path}");
    }
    assert_eq!(
        get("/screens/nowhere", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/screens/assets/kiosk.html", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    let root = get("/", &[]).await;
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()[header::LOCATION], "/screens/kiosk");
}

/// The policy forbids inline code: a page that had some would break in
/// the browser, so none may have it.
#[test]
fn no_page_holds_inline_script_style_or_handlers() {
    let attribute = |text: &str, name: &str| {
        text.match_indices(name)
            .any(|(i, _)| text[..i].ends_with(' ') && text[i + name.len()..].starts_with('='))
    };
    for (name, asset) in ASSETS.iter().filter(|(n, _)| n.ends_with(".html")) {
        let text = std::str::from_utf8(asset.plain).unwrap();
        for (i, _) in text.match_indices("<script") {
            let tag = &text[i..i + text[i..].find('>').unwrap()];
            assert!(
                tag.contains(" src=\"/screens/assets/"),
                "{name}: inline {tag}"
            );
        }
        assert!(!text.contains("<style"), "{name}: inline style");
        assert!(!attribute(text, "style"), "{name}: style attribute");
        for handler in ["onclick", "onload", "oninput", "onsubmit", "onerror"] {
            assert!(!attribute(text, handler), "{name}: {handler}");
        }
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{name}: loads from elsewhere"
        );
    }
    for (name, asset) in ASSETS.iter().filter(|(n, _)| n.ends_with(".js")) {
        let text = std::str::from_utf8(asset.plain).unwrap();
        // Text reaches the page through textContent, never as markup.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!text.contains(sink), "{name} uses {sink}");
        }
    }
}

/// The kiosk's first load — its page, the stylesheet, its scripts and the
/// icon — stays within 100 KB compressed.
#[test]
fn the_kiosk_s_first_load_is_within_its_budget() {
    let first_load = [
        "kiosk.html",
        "screens.css",
        "common.js",
        "cpf.js",
        "kiosk.js",
        "icon.svg",
    ];
    let sizes: HashMap<_, _> = compressed_sizes().into_iter().collect();
    let total: usize = first_load.iter().map(|n| sizes[n]).sum();
    assert!(total <= 100 * 1024, "{total} bytes");
}

#[test]
fn gzip_is_taken_unless_refused() {
    let with = |value: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        accepts_gzip(&h)
    };
    assert!(with("gzip, deflate, br"));
    assert!(with("br;q=1.0, GZIP;q=0.5"));
    assert!(!with("gzip;q=0"));
    assert!(!with("br"));
    assert!(!accepts_gzip(&HeaderMap::new()));
}
