//! ARCHITECTURE.md kept true: techctl's crates depend on each other only as
//! it draws them, and the engine names no cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each crate under `cli/` and the crates of ours it may use.
const ALLOWED: [(&str, &[&str]); 9] = [
    (
        "techctl",
        &[
            "blueprint",
            "engine",
            "aws",
            "image",
            "keys",
            "dev",
            "files",
        ],
    ),
    ("aws", &["blueprint", "engine", "iam", "image", "keys"]),
    ("dev", &["blueprint", "image", "keys", "files"]),
    ("engine", &["blueprint", "iam"]),
    ("iam", &[]),
    ("keys", &["blueprint"]),
    ("blueprint", &[]),
    ("image", &[]),
    ("files", &[]),
];

fn cli() -> PathBuf {
    testkit::workspace_root().join("cli")
}

/// The `techctl-*` crates a manifest depends on (normal dependencies).
fn ours(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("read the manifest");
    let doc: toml::Table = text.parse().expect("a manifest is TOML");
    let deps = doc
        .get("dependencies")
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();
    deps.iter()
        .filter_map(|(name, spec)| {
            let package = spec.get("package").and_then(|p| p.as_str()).unwrap_or(name);
            package.strip_prefix("techctl-").map(str::to_string)
        })
        .collect()
}

#[test]
fn techctl_s_crates_depend_on_each_other_only_one_way() {
    let allowed: BTreeMap<&str, BTreeSet<String>> = ALLOWED
        .iter()
        .map(|(krate, deps)| (*krate, deps.iter().map(|d| d.to_string()).collect()))
        .collect();
    let found: BTreeSet<String> = std::fs::read_dir(cli())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = allowed.keys().map(|k| k.to_string()).collect();
    assert_eq!(found, known, "every crate under cli/ is in ARCHITECTURE.md");
    for (krate, may_use) in &allowed {
        let uses = ours(&cli().join(krate).join("Cargo.toml"));
        let extra: Vec<_> = uses.difference(may_use).collect();
        assert!(
            extra.is_empty(),
            "{krate} depends on {extra:?}, which ARCHITECTURE.md does not allow"
        );
    }
}

/// The engine and the IAM evaluator name no cloud SDK: both are tested
/// and used without one.
#[test]
fn the_engine_names_no_cloud() {
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(&cli().join("engine"), &mut files);
    assert!(files.len() > 5, "the engine's sources are found");
    sources(&cli().join("iam"), &mut files);
    for krate in ["engine", "iam"] {
        let manifest = std::fs::read_to_string(cli().join(krate).join("Cargo.toml")).unwrap();
        assert!(
            !manifest.contains("aws-"),
            "the {krate} crate's manifest names an AWS crate"
        );
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in [
            "aws_sdk_",
            "aws_config",
            "aws_smithy",
            "crate::aws",
            "AwsError",
        ] {
            assert!(!text.contains(word), "{} mentions {word}", file.display());
        }
    }
}
