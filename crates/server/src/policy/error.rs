//! Errors and warnings from loading policy files.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a policy set could not be loaded. The old set, if any, stays in force.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy directory cannot be listed (missing, not a directory, no permission).
    #[error("cannot read policy directory {}: {source}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A policy file cannot be read (permission, not UTF-8, …).
    #[error("cannot read policy file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// One or more files are malformed; every problem found is listed, one per line.
    #[error("{}", DiagnosticList(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PolicyError {
    /// The positioned problems, if the files were read but are invalid.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(diagnostics) => diagnostics,
            _ => &[],
        }
    }
}

/// One problem in a policy file, at a position. Displays as `file:line:column: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as named when loading (the path under the directory for `load_dir`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, and where possible how to fix it.
    pub reason: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.reason
        )
    }
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Something legal but probably unintended in a policy set. Displays as
/// `file:line: warning: message`, or `warning: message` when it concerns the whole set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file it concerns, if any.
    pub file: Option<String>,
    /// The line it concerns, if any (1-based).
    pub line: Option<usize>,
    /// What looks wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: warning: {}", self.message),
            (Some(file), None) => write!(f, "{file}: warning: {}", self.message),
            _ => write!(f, "warning: {}", self.message),
        }
    }
}

/// Converts a byte offset into a 1-based (line, column in characters).
pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "ab\ncé\nx";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 2), (1, 3));
        assert_eq!(position(text, 3), (2, 1));
        assert_eq!(position(text, 6), (2, 3), "columns count characters");
        assert_eq!(position(text, 5), (2, 2), "inside a character: its start");
        assert_eq!(position(text, 7), (3, 1));
        assert_eq!(position(text, 99), (3, 2));
    }
}
