//! Service images without Docker: an OCI image assembled in Rust from the
//! release binary (as `ko` does for Go) and pushed through the registry's
//! HTTP API.
//!
//! An image has two layers — the runtime (users, CA certificates, the
//! shared libraries the binary links) and the binary — and a config naming
//! the entrypoint, the port, the non-root user and the git revision. Every
//! byte is reproducible, so unchanged source gives the same digest and a
//! push uploads nothing new.

pub mod arch;
pub mod build;
pub mod layer;
pub mod registry;
pub mod runtime;

use std::path::Path;

use serde_json::{Value, json};

pub use arch::Architecture;
pub use layer::{Layer, LayerBuilder, digest};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Where the binary goes in the image.
pub const BIN_DIR: &str = "/usr/local/bin";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(pub String);

impl ImageError {
    pub fn new(message: impl Into<String>) -> ImageError {
        ImageError(message.into())
    }
}

/// What goes into a service's image.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    pub service: &'a str,
    pub binary: &'a Path,
    pub port: u16,
    /// The git revision the binary was built from, for the labels.
    pub revision: Option<String>,
}

/// A built image: its blobs and the manifest that names them.
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    /// The manifest's digest: what a deploy names.
    pub digest: String,
    /// The binary's, named in the config and in the task definition.
    pub architecture: Architecture,
}

impl Image {
    /// Every blob the registry must hold, with its digest.
    pub fn blobs(&self) -> Vec<(&str, &[u8])> {
        let mut blobs: Vec<(&str, &[u8])> = self
            .layers
            .iter()
            .map(|l| (l.digest.as_str(), l.gzip.as_slice()))
            .collect();
        blobs.push((self.config_digest.as_str(), self.config.as_slice()));
        blobs
    }

    pub fn compressed_size(&self) -> usize {
        self.layers.iter().map(|l| l.gzip.len()).sum::<usize>() + self.config.len()
    }

    pub fn uncompressed_size(&self) -> usize {
        self.layers.iter().map(|l| l.tar_size).sum()
    }
}

/// Builds the image of one service binary.
pub fn build(spec: &ImageSpec) -> Result<Image, ImageError> {
    let io = |e: std::io::Error| ImageError::new(format!("cannot assemble the image: {e}"));
    let architecture = Architecture::of_binary(spec.binary)?;
    let base = runtime::base_layer(spec.binary)?.finish().map_err(io)?;
    let file_name = spec
        .binary
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| ImageError::new(format!("{} is not a file", spec.binary.display())))?;
    let entrypoint = format!("{BIN_DIR}/{file_name}");
    let binary = std::fs::read(spec.binary)
        .map_err(|e| ImageError::new(format!("cannot read {}: {e}", spec.binary.display())))?;
    let mut app = LayerBuilder::new();
    app.file(&entrypoint, 0o755, binary);
    let app = app.finish().map_err(io)?;
    let layers = vec![base, app];

    let config = config(spec, architecture, &entrypoint, &layers);
    let config = serde_json::to_vec(&config).map_err(|e| ImageError::new(e.to_string()))?;
    let config_digest = digest(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
        "layers": layers
            .iter()
            .map(|l| json!({"mediaType": LAYER_TYPE, "digest": l.digest, "size": l.gzip.len()}))
            .collect::<Vec<_>>(),
        "annotations": labels(spec),
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| ImageError::new(e.to_string()))?;
    Ok(Image {
        digest: digest(&manifest),
        layers,
        config,
        config_digest,
        manifest,
        architecture,
    })
}

fn labels(spec: &ImageSpec) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(
        "org.opencontainers.image.title".into(),
        json!(format!("{}-service", spec.service)),
    );
    if let Some(revision) = &spec.revision {
        labels.insert("org.opencontainers.image.revision".into(), json!(revision));
    }
    Value::Object(labels)
}

/// The image config: no creation time, so that it stays reproducible.
fn config(
    spec: &ImageSpec,
    architecture: Architecture,
    entrypoint: &str,
    layers: &[Layer],
) -> Value {
    json!({
        "architecture": architecture.oci(),
        "os": "linux",
        "config": {
            "User": format!("{}:{}", runtime::USER_ID, runtime::USER_ID),
            "Entrypoint": [entrypoint],
            "ExposedPorts": { format!("{}/tcp", spec.port): {} },
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                format!("PORT={}", spec.port),
                format!("SSL_CERT_FILE={}", runtime::CA_BUNDLE),
            ],
            "WorkingDir": "/home/nonroot",
            "Labels": labels(spec),
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": [
            {"created_by": "techctl: runtime (users, CA certificates, shared libraries)"},
            {"created_by": format!("techctl: {entrypoint}")},
        ],
    })
}

/// The revision of the source at `dir`, with `-dirty` when it has
/// uncommitted changes; none outside git.
pub fn git_revision(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}
