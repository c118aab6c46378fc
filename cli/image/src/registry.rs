//! The registry HTTP API (OCI distribution): blobs are checked with HEAD
//! and uploaded only when missing (POST an upload, PUT it with its digest),
//! then the manifest is put under its digest and each tag. Works with ECR
//! (its authorization token as Basic credentials) and any registry given by
//! URL (`http://` for a local one).

use std::time::Duration;

use bytes::Bytes;
use httpkit::HttpClient;
use hyper::Method;
use hyper::header::HeaderMap;

use super::{Image, ImageError, MANIFEST_TYPE};

const TIMEOUT: Duration = Duration::from_secs(300);

pub struct Registry {
    /// `scheme://host[:port]`, no trailing slash.
    base: String,
    authorization: Option<String>,
    client: HttpClient,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .finish()
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Digests of the blobs uploaded.
    pub uploaded: Vec<String>,
    /// Digests of the blobs the registry had already.
    pub present: Vec<String>,
    pub bytes_uploaded: usize,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(400)]).into_owned()
    }
}

impl Registry {
    /// A registry at `url` (a bare `host:port` means HTTPS, except on
    /// localhost); `authorization` is a whole header value.
    pub fn new(url: &str, authorization: Option<String>) -> Result<Registry, ImageError> {
        let url = url.trim_end_matches('/');
        let base = if url.contains("://") {
            url.to_string()
        } else if url.starts_with("localhost") || url.starts_with("127.0.0.1") {
            format!("http://{url}")
        } else {
            format!("https://{url}")
        };
        Ok(Registry {
            base,
            authorization,
            client: HttpClient::new(TIMEOUT),
        })
    }

    /// The host (and port) images are named by: `host:port/repository`.
    pub fn host(&self) -> &str {
        self.base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, host)| host)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, ImageError> {
        // The credentials are the registry's: never sent where it redirects.
        let ours = url.starts_with(&self.base);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(authorization) = self.authorization.as_deref().filter(|_| ours) {
            all.push(("authorization", authorization));
        }
        let response = self
            .client
            .send(method.clone(), url, &all, body)
            .await
            .map_err(|e| ImageError::new(e.to_string()))?;
        let status = response.status.as_u16();
        let answer = Answer {
            status,
            headers: response.headers,
            body: response.body,
        };
        if status == 401 || status == 403 {
            return Err(ImageError::new(format!(
                "the registry {} refused {method} {url} ({status}): {}\n  check the registry credentials",
                self.base,
                answer.text()
            )));
        }
        Ok(answer)
    }

    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, ImageError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let answer = self.send(Method::HEAD, &url, &[], Bytes::new()).await?;
        match answer.status {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(ImageError::new(format!("HEAD {url} answered {status}"))),
        }
    }

    /// One monolithic upload: POST to open it, PUT the bytes with their digest.
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(), ImageError> {
        let url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let opened = self.send(Method::POST, &url, &[], Bytes::new()).await?;
        let location = match (opened.status, opened.header("location")) {
            (202, Some(location)) => location.to_string(),
            _ => {
                return Err(ImageError::new(format!(
                    "POST {url} answered {}: {}",
                    opened.status,
                    opened.text()
                )));
            }
        };
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let length = bytes.len().to_string();
        let done = self
            .send(
                Method::PUT,
                &put,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-length", &length),
                ],
                Bytes::copy_from_slice(bytes),
            )
            .await?;
        if done.status == 201 {
            Ok(())
        } else {
            Err(ImageError::new(format!(
                "uploading {digest} answered {}: {}",
                done.status,
                done.text()
            )))
        }
    }

    /// Puts the manifest under `reference` (its digest, or a tag).
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &[u8],
    ) -> Result<(), ImageError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let answer = self
            .send(
                Method::PUT,
                &url,
                &[("content-type", MANIFEST_TYPE)],
                Bytes::copy_from_slice(manifest),
            )
            .await?;
        if answer.status == 201 {
            Ok(())
        } else {
            Err(ImageError::new(format!(
                "PUT {url} answered {}: {}",
                answer.status,
                answer.text()
            )))
        }
    }

    /// Pushes every missing blob, then the manifest by digest and by each tag.
    pub async fn push(
        &self,
        image: &Image,
        repository: &str,
        tags: &[String],
    ) -> Result<Pushed, ImageError> {
        let mut pushed = Pushed::default();
        for (digest, bytes) in image.blobs() {
            if self.has_blob(repository, digest).await? {
                pushed.present.push(digest.to_string());
            } else {
                self.upload_blob(repository, digest, bytes).await?;
                pushed.uploaded.push(digest.to_string());
                pushed.bytes_uploaded += bytes.len();
            }
        }
        self.put_manifest(repository, &image.digest, &image.manifest)
            .await?;
        for tag in tags {
            self.put_manifest(repository, tag, &image.manifest).await?;
        }
        Ok(pushed)
    }

    /// The manifest under `reference`, with the digest the registry gives it.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>), ImageError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let answer = self
            .send(
                Method::GET,
                &url,
                &[("accept", MANIFEST_TYPE)],
                Bytes::new(),
            )
            .await?;
        if answer.status != 200 {
            return Err(ImageError::new(format!(
                "GET {url} answered {}: {}",
                answer.status,
                answer.text()
            )));
        }
        let digest = answer.header("docker-content-digest").map(str::to_string);
        Ok((answer.body.to_vec(), digest))
    }

    pub async fn blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>, ImageError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let answer = self.send(Method::GET, &url, &[], Bytes::new()).await?;
        match answer.status {
            200 => Ok(answer.body.to_vec()),
            // A registry may send blobs from elsewhere (S3 behind ECR).
            307 | 302 => {
                let location = answer.header("location").unwrap_or_default().to_string();
                let moved = self.send(Method::GET, &location, &[], Bytes::new()).await?;
                Ok(moved.body.to_vec())
            }
            status => Err(ImageError::new(format!("GET {url} answered {status}"))),
        }
    }
}
