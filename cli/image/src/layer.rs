//! Reproducible image layers: the same files give the same bytes, so the
//! same digest. Entries are sorted by path, owned by root (or the given
//! ids) and dated at the epoch; gzip carries no name and no time.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// One finished layer: the tar (whose digest is the config's `diff_id`)
/// and its gzip (whose digest the manifest names).
#[derive(Clone)]
pub struct Layer {
    pub gzip: Vec<u8>,
    pub diff_id: String,
    pub digest: String,
    /// Size of the tar, before compression.
    pub tar_size: usize,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("digest", &self.digest)
            .field("size", &self.gzip.len())
            .finish()
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Dir {
        mode: u32,
        owner: u64,
    },
    File {
        mode: u32,
        owner: u64,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
}

/// Files to put in a layer, by absolute path.
#[derive(Debug, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        LayerBuilder::default()
    }

    /// A folder (and its parents), owned by `owner` (uid = gid).
    pub fn dir(&mut self, path: &str, mode: u32, owner: u64) -> &mut Self {
        self.parents(path);
        self.entries
            .insert(relative(path), Entry::Dir { mode, owner });
        self
    }

    /// A file owned by root.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> &mut Self {
        self.parents(path);
        self.entries.insert(
            relative(path),
            Entry::File {
                mode,
                owner: 0,
                data,
            },
        );
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.parents(path);
        self.entries.insert(
            relative(path),
            Entry::Symlink {
                target: target.to_string(),
            },
        );
        self
    }

    /// The folders above `path`, unless already given.
    fn parents(&mut self, path: &str) {
        let relative = relative(path);
        let mut prefix = String::new();
        let parts: Vec<&str> = relative.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            prefix.push_str(part);
            self.entries.entry(prefix.clone()).or_insert(Entry::Dir {
                mode: 0o755,
                owner: 0,
            });
            prefix.push('/');
        }
    }

    pub fn finish(&self) -> std::io::Result<Layer> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(0);
            match entry {
                Entry::Dir { mode, owner } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid(*owner);
                    header.set_gid(*owner);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::File { mode, owner, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(*owner);
                    header.set_gid(*owner);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)?;
                }
            }
        }
        let tar = tar.into_inner()?;
        let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
        gzip.write_all(&tar)?;
        let gzip = gzip.finish()?;
        Ok(Layer {
            diff_id: digest(&tar),
            digest: digest(&gzip),
            tar_size: tar.len(),
            gzip,
        })
    }
}

fn relative(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LayerBuilder {
        let mut layer = LayerBuilder::new();
        layer
            .file("/usr/local/bin/app", 0o755, b"binary".to_vec())
            .file("/etc/passwd", 0o644, b"root:x:0:0::/:\n".to_vec())
            .dir("/tmp", 0o1777, 0)
            .symlink("/lib64/ld.so", "/lib/ld.so");
        layer
    }

    #[test]
    fn the_same_files_give_the_same_layer() {
        let a = sample().finish().unwrap();
        let b = sample().finish().unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, b.diff_id);
        let mut other = sample();
        other.file("/etc/group", 0o644, b"root:x:0:\n".to_vec());
        assert_ne!(other.finish().unwrap().digest, a.digest);
    }

    #[test]
    fn entries_are_sorted_with_their_folders_owned_by_root_at_the_epoch() {
        let layer = sample().finish().unwrap();
        let tar = flate2::read::GzDecoder::new(layer.gzip.as_slice());
        let mut archive = tar::Archive::new(tar);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!(header.uid().unwrap(), 0);
            seen.push(entry.path().unwrap().display().to_string());
        }
        assert_eq!(
            seen,
            [
                "etc/",
                "etc/passwd",
                "lib64/",
                "lib64/ld.so",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/app"
            ]
        );
    }
}
