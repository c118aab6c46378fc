//! What a service binary needs at run time besides itself: the shared
//! libraries it links (found with `ldd`) and their loader, CA certificates
//! for TLS to AWS and Mercado Pago, and a user that is not root.

use std::path::Path;
use std::process::Command;

use super::ImageError;
use super::layer::LayerBuilder;

/// The uid and gid the services run as (distroless' "nonroot").
pub const USER_ID: u64 = 65532;
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The files every service image shares: users, certificates, folders and
/// the libraries `binary` is linked against.
pub fn base_layer(binary: &Path) -> Result<LayerBuilder, ImageError> {
    let mut layer = LayerBuilder::new();
    layer
        .file(
            "/etc/passwd",
            0o644,
            format!(
                "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER_ID}:{USER_ID}:nonroot:/home/nonroot:/sbin/nologin\n"
            )
            .into_bytes(),
        )
        .file(
            "/etc/group",
            0o644,
            format!("root:x:0:\nnonroot:x:{USER_ID}:\n").into_bytes(),
        )
        .file("/etc/nsswitch.conf", 0o644, b"hosts: files dns\n".to_vec())
        .dir("/tmp", 0o1777, 0)
        .dir("/home/nonroot", 0o700, USER_ID);
    let certificates = std::fs::read(CA_BUNDLE).map_err(|e| {
        ImageError::new(format!(
            "cannot read the CA certificates at {CA_BUNDLE} ({e}); install them with: apt-get install ca-certificates"
        ))
    })?;
    layer.file(CA_BUNDLE, 0o644, certificates);
    for library in shared_libraries(binary)? {
        let data = std::fs::read(&library).map_err(|e| {
            ImageError::new(format!(
                "cannot read {library}, which {} needs: {e}",
                binary.display()
            ))
        })?;
        layer.file(&library, 0o755, data);
    }
    Ok(layer)
}

/// The libraries (and the loader) `ldd` says the binary loads, by the path
/// it loads them from; none for a static binary.
pub fn shared_libraries(binary: &Path) -> Result<Vec<String>, ImageError> {
    let out = Command::new("ldd").arg(binary).output().map_err(|e| {
        ImageError::new(format!(
            "cannot run ldd to find what {} links ({e}); install it with: apt-get install libc-bin",
            binary.display()
        ))
    })?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    parse_ldd(&text).map_err(|missing| {
        ImageError::new(format!(
            "{} needs {missing}, which this machine does not have",
            binary.display()
        ))
    })
}

/// The paths in `ldd` output; `Err` names a library that was not found.
fn parse_ldd(text: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(name.trim().to_string());
                }
                rest
            }
            None => line,
        };
        let path = target.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            paths.push(path.to_string());
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f01)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libssl.so.3",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert_eq!(
            parse_ldd("\tlibgone.so.1 => not found\n").unwrap_err(),
            "libgone.so.1"
        );
    }
}
