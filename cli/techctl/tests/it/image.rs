//! Service images without Docker: built twice from the same binary they
//! are the same to the byte; pushed to a real registry (Debian's
//! `docker-registry`, started here) and pulled back they are what was
//! built; a second push uploads nothing; and the binary taken out of the
//! image runs on the image's own libraries and answers `/health/live`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use image::registry::Registry;
use image::{self, ImageSpec, digest};
use serde_json::Value;
use testkit::registry::LocalRegistry;

const REPOSITORY: &str = "techchallenge/product";

async fn product_binary() -> std::path::PathBuf {
    let built = image::build::binaries(
        &testkit::workspace_root(),
        &["product".to_string()],
        true,
        // Reuses the dependencies of the tests' own debug build.
        &image::build::Profile::named("dev").expect("a profile name"),
        &|_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("build the product service: {e}"));
    built["product"].clone()
}

fn unpack(layer: &[u8], into: &Path) {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    archive.set_preserve_permissions(true);
    archive.unpack(into).expect("unpack a layer");
}

#[tokio::test]
async fn an_image_is_reproducible_pushed_once_and_runs() {
    let binary = product_binary().await;
    let spec = ImageSpec {
        service: "product",
        binary: &binary,
        port: 4002,
        revision: Some("0123456789abcdef".into()),
    };
    let first = image::build(&spec).unwrap();
    let second = image::build(&spec).unwrap();
    assert_eq!(
        first.digest, second.digest,
        "the same source, the same digest"
    );
    assert_eq!(first.manifest, second.manifest);

    let local = tokio::task::spawn_blocking(LocalRegistry::start)
        .await
        .unwrap();
    let registry = Registry::new(&local.url, None).unwrap();
    let pushed = registry
        .push(&first, REPOSITORY, &["latest".to_string()])
        .await
        .unwrap();
    assert_eq!(pushed.uploaded.len(), 3, "two layers and the config");
    assert!(pushed.present.is_empty());
    let again = registry
        .push(&second, REPOSITORY, &["latest".to_string()])
        .await
        .unwrap();
    assert!(
        again.uploaded.is_empty(),
        "a second push uploads no blob: {again:?}"
    );
    assert_eq!(again.present.len(), 3);

    // Pulled back by tag: the manifest, config and layers that were built.
    let (manifest, served_digest) = registry.manifest(REPOSITORY, "latest").await.unwrap();
    assert_eq!(manifest, first.manifest);
    assert_eq!(served_digest.as_deref(), Some(first.digest.as_str()));
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["mediaType"], image::MANIFEST_TYPE);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.revision"],
        "0123456789abcdef"
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: Value =
        serde_json::from_slice(&registry.blob(REPOSITORY, config_digest).await.unwrap()).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/product-service"])
    );
    assert!(config["config"]["ExposedPorts"]["4002/tcp"].is_object());
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "product-service"
    );
    assert!(
        config.get("created").is_none(),
        "no time in a reproducible image"
    );

    let rootfs = tempfile::tempdir().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (layer, built) in layers.iter().zip(&first.layers) {
        let wanted = layer["digest"].as_str().unwrap();
        let bytes = registry.blob(REPOSITORY, wanted).await.unwrap();
        assert_eq!(digest(&bytes), wanted);
        assert_eq!(bytes, built.gzip);
        unpack(&bytes, rootfs.path());
    }
    let root = rootfs.path();
    assert!(root.join("etc/ssl/certs/ca-certificates.crt").is_file());
    assert!(
        std::fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .contains("nonroot:x:65532:65532")
    );

    // The binary runs on the image's loader and libraries alone.
    let loader = image::runtime::shared_libraries(&binary)
        .unwrap()
        .into_iter()
        .find(|l| l.contains("ld-linux"))
        .expect("a dynamic loader");
    let libraries: Vec<String> = image::runtime::shared_libraries(&binary)
        .unwrap()
        .iter()
        .filter_map(|l| {
            Path::new(l).parent().map(|p| {
                root.join(p.strip_prefix("/").unwrap())
                    .display()
                    .to_string()
            })
        })
        .collect();
    let key = keys::generate().unwrap();
    let key_file = rootfs.path().join("key.pem");
    std::fs::write(&key_file, &key.private_key_pem).unwrap();
    let port = testkit::free_port();
    let database = tokio::task::spawn_blocking(|| testkit::postgres().fresh_database("image"))
        .await
        .unwrap();
    let mut service = Command::new(root.join(loader.trim_start_matches('/')))
        .arg("--library-path")
        .arg(libraries.join(":"))
        .arg(root.join("usr/local/bin/product-service"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database)
        .env("KEYS_FILE", &key_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answered = tokio::task::spawn_blocking(move || {
        testkit::http::wait_until_ok(port, "/health/live", Duration::from_secs(30))
    })
    .await;
    let _ = service.kill();
    let _ = service.wait();
    answered.expect("the binary from the image answers /health/live");
    eprintln!(
        "product-service image {}: {:.1} MiB compressed, {:.1} MiB uncompressed",
        first.digest,
        first.compressed_size() as f64 / 1048576.0,
        first.uncompressed_size() as f64 / 1048576.0
    );
}
