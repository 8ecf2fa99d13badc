//! libpq's password file (`PGPASSFILE`, default `~/.pgpass`): lines of
//! `hostname:port:database:username:password`, where `*` matches anything and `\` escapes `:` and
//! `\`. The first line that matches the connection gives its password, as in libpq
//! (<https://www.postgresql.org/docs/current/libpq-pgpass.html>). Operators who already keep
//! their database passwords this way need not copy them into a file of Tresor's own.
//!
//! Unlike libpq, which ignores a file others can read with a warning, Tresor refuses it: a
//! password file readable by others is a leak to fix, not a detail to skip over.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::PgError;

/// What a password-file line is matched against.
pub(crate) struct Target<'a> {
    /// The host as connected to (`localhost` for a Unix socket).
    pub host: &'a str,
    /// The port.
    pub port: u16,
    /// The database.
    pub database: &'a str,
    /// The user.
    pub user: &'a str,
}

/// The password the file at `path` holds for `target`, if a line matches.
pub(crate) fn lookup(
    path: &Path,
    target: &Target<'_>,
) -> Result<Option<Zeroizing<String>>, PgError> {
    let bad = |reason: String| PgError::File {
        what: "password file (PGPASSFILE)",
        path: path.to_owned(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !metadata.is_file() {
        return Err(bad("it is not a regular file".into()));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "it is readable by group or others (mode {mode:o}): make it owner-only (chmod 600)"
        )));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
    Ok(find(&text, target))
}

/// The password of the first line of `text` that matches `target`.
fn find(text: &str, target: &Target<'_>) -> Option<Zeroizing<String>> {
    let port = target.port.to_string();
    let wanted = [target.host, port.as_str(), target.database, target.user];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split(line)?;
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field.as_str() == "*" || field.as_str() == value);
            let [_, _, _, _, password] = fields;
            matches.then_some(password)
        })
}

/// The five fields of a line, unescaped; `None` for a line that does not have five.
fn split(line: &str) -> Option<[Zeroizing<String>; 5]> {
    let mut fields: Vec<Zeroizing<String>> = vec![Zeroizing::new(String::new())];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    fields.last_mut()?.push(escaped);
                }
            }
            ':' if fields.len() < 5 => fields.push(Zeroizing::new(String::new())),
            c => fields.last_mut()?.push(c),
        }
    }
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target {
        host: "db.internal",
        port: 5432,
        database: "tresor",
        user: "tresor_a",
    };

    fn found(text: &str) -> Option<String> {
        find(text, &TARGET).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let text = "# comment\n\
                    other:5432:tresor:tresor_a:wrong-host\n\
                    db.internal:5433:tresor:tresor_a:wrong-port\n\
                    db.internal:5432:other:tresor_a:wrong-db\n\
                    db.internal:5432:tresor:someone:wrong-user\n\
                    db.internal:5432:tresor:tresor_a:right\n\
                    *:*:*:*:later\n";
        assert_eq!(found(text).as_deref(), Some("right"));
        assert_eq!(found("*:*:*:*:any").as_deref(), Some("any"));
        assert_eq!(found("db.internal:*:*:tresor_a:w").as_deref(), Some("w"));
        assert_eq!(found("other:*:*:*:x"), None);
        assert_eq!(found(""), None);
    }

    #[test]
    fn escapes_and_colons_in_the_password() {
        // `\:` and `\\` are a colon and a backslash; an unescaped colon in the last field
        // belongs to the password (libpq reads the rest of the line).
        assert_eq!(
            found(r"db.internal:5432:tresor:tresor_a:a\:b\\c:d").as_deref(),
            Some(r"a:b\c:d")
        );
        assert_eq!(
            find(
                r"db\:x:5432:tresor:tresor_a:p",
                &Target {
                    host: "db:x",
                    ..TARGET
                }
            )
            .as_deref()
            .map(String::as_str),
            Some("p")
        );
    }

    #[test]
    fn malformed_lines_match_nothing() {
        assert_eq!(found("db.internal:5432:tresor:tresor_a"), None);
        assert_eq!(found("just a line"), None);
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret-value\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = lookup(&path, &TARGET).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("pgpass"), "{e}");
        assert!(!e.contains("secret-value"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            lookup(&path, &TARGET)
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some("secret-value")
        );
        let e = lookup(&dir.path().join("missing"), &TARGET).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
