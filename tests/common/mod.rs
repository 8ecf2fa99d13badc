//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

/// True if any file under `dir` (recursively) contains `needle`.
pub fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    assert!(needle.len() >= 8, "needle too short to be meaningful");
    walk(dir).iter().any(|file| {
        let bytes = std::fs::read(file).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
