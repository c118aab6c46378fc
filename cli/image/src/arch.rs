//! The processor architecture of a service binary, read from its ELF
//! header: the image and the task definition must name the one the binary
//! was built for, or Fargate starts it on the other and it dies with
//! `exec format error`.

use std::path::Path;

use super::ImageError;

/// The architectures Fargate runs Linux tasks on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Amd64,
    Arm64,
}

/// ELF's machine numbers (`e_machine`) for the two.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

impl Architecture {
    /// The architecture of the ELF executable at `path`.
    pub fn of_binary(path: &Path) -> Result<Architecture, ImageError> {
        use std::io::Read;
        let mut header = [0u8; 20];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut header))
            .map_err(|e| ImageError::new(format!("cannot read {}: {e}", path.display())))?;
        Architecture::of_header(&header)
            .map_err(|why| ImageError::new(format!("{}: {why}", path.display())))
    }

    fn of_header(header: &[u8; 20]) -> Result<Architecture, String> {
        if header[..4] != *b"\x7fELF" {
            return Err("not an ELF executable".into());
        }
        let machine = match header[5] {
            1 => u16::from_le_bytes([header[18], header[19]]),
            2 => u16::from_be_bytes([header[18], header[19]]),
            _ => return Err("an ELF file of unknown byte order".into()),
        };
        match machine {
            EM_X86_64 => Ok(Architecture::Amd64),
            EM_AARCH64 => Ok(Architecture::Arm64),
            other => Err(format!(
                "built for ELF machine {other}; Fargate runs x86_64 and arm64 only"
            )),
        }
    }

    /// The name in an OCI image config (`architecture`).
    pub fn oci(self) -> &'static str {
        match self {
            Architecture::Amd64 => "amd64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The name in an ECS task definition (`runtimePlatform.cpuArchitecture`).
    pub fn ecs(self) -> &'static str {
        match self {
            Architecture::Amd64 => "X86_64",
            Architecture::Arm64 => "ARM64",
        }
    }

    /// From an OCI image config's `architecture`.
    pub fn from_oci(name: &str) -> Option<Architecture> {
        match name {
            "amd64" => Some(Architecture::Amd64),
            "arm64" => Some(Architecture::Arm64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class_data: u8, machine: [u8; 2]) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = class_data;
        h[18] = machine[0];
        h[19] = machine[1];
        h
    }

    #[test]
    fn the_architecture_comes_from_the_elf_header() {
        assert_eq!(
            Architecture::of_header(&header(1, [62, 0])),
            Ok(Architecture::Amd64)
        );
        assert_eq!(
            Architecture::of_header(&header(1, [183, 0])),
            Ok(Architecture::Arm64)
        );
        assert!(
            Architecture::of_header(&header(1, [40, 0]))
                .unwrap_err()
                .contains("x86_64 and arm64 only")
        );
        assert!(Architecture::of_header(&[0; 20]).is_err());
    }

    #[test]
    fn this_machines_own_binaries_are_recognised() {
        let own = std::env::current_exe().unwrap();
        let expected = if cfg!(target_arch = "aarch64") {
            Architecture::Arm64
        } else {
            Architecture::Amd64
        };
        assert_eq!(Architecture::of_binary(&own).unwrap(), expected);
    }
}
