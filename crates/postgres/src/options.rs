//! What the server's `[storage]` table gives the PostgreSQL backend (docs/configuration.md), and
//! the redaction of connection strings for logs and errors.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::PgError;

/// How to reach the database and who this node is.
#[derive(Clone)]
pub struct PgOptions {
    /// A libpq connection URL or key/value string, without a password.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// PEM file of the CA(s) that sign the database's certificate: TLS is required when set.
    pub ca_file: Option<PathBuf>,
    /// This node's name in the change log.
    pub node_id: String,
    /// A file holding the database password (one line).
    pub password_file: Option<PathBuf>,
    /// libpq's password file (`PGPASSFILE`, `~/.pgpass`; [`default_passfile`]), read when
    /// `password_file` is not set: the first line matching host, port, database and user.
    pub passfile: Option<PathBuf>,
    /// PEM certificate chain this node presents to the database (`cert` authentication in
    /// `pg_hba.conf`); needs `ca_file` (TLS) and `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`, owner-only.
    pub client_key: Option<PathBuf>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .field("node_id", &self.node_id)
            .field("password_file", &self.password_file)
            .field("passfile", &self.passfile)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

/// Longest accepted `node_id`.
const MAX_NODE_ID: usize = 64;

impl PgOptions {
    /// Options with the default pool size and neither TLS nor a password.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            pool_size: 8,
            ca_file: None,
            node_id: node_id.into(),
            password_file: None,
            passfile: None,
            client_cert: None,
            client_key: None,
        }
    }

    /// The connection string as it may appear in logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Checks everything but the files: the URL (no password in it, a user), `node_id` and
    /// `pool_size`. What a configuration check runs before any path is resolved.
    pub fn check(&self) -> Result<(), PgError> {
        self.url_config().map(|_| ())
    }

    /// Checks the options and builds the driver configuration (reading the password file).
    pub(crate) fn driver_config(&self) -> Result<(tokio_postgres::Config, bool), PgError> {
        let (mut config, tls) = self.url_config()?;
        if let Some(path) = &self.password_file {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| PgError::File {
                    what: "storage.password_file",
                    path: path.clone(),
                    reason: e.to_string(),
                })?);
            let password = text.trim_end_matches(['\r', '\n']);
            if password.is_empty() || password.contains('\n') {
                return Err(PgError::File {
                    what: "storage.password_file",
                    path: path.clone(),
                    reason: "it must hold the password on one line".into(),
                });
            }
            config.password(password);
        } else if let Some(path) = &self.passfile {
            let host = match config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
                // libpq matches a Unix socket as `localhost`.
                _ => "localhost".to_owned(),
            };
            let user = config.get_user().unwrap_or_default().to_owned();
            let database = config.get_dbname().unwrap_or(&user).to_owned();
            let target = crate::passfile::Target {
                host: &host,
                port: config.get_ports().first().copied().unwrap_or(5432),
                database: &database,
                user: &user,
            };
            if let Some(password) = crate::passfile::lookup(path, &target)? {
                config.password(password.as_str());
            }
        }
        Ok((config, tls))
    }

    /// The TLS connector for these options (`None` without `ca_file`): the database's
    /// certificate must chain to `ca_file`; with `client_cert`, this node presents it.
    pub(crate) fn tls_connector(
        &self,
    ) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, PgError> {
        let Some(ca_file) = &self.ca_file else {
            return Ok(None);
        };
        let client = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        };
        crate::tls::connector(ca_file, client).map(Some)
    }

    fn url_config(&self) -> Result<(tokio_postgres::Config, bool), PgError> {
        validate_node_id(&self.node_id)?;
        if self.pool_size == 0 || self.pool_size > 1024 {
            return Err(PgError::Options(format!(
                "key `storage.pool_size`: {} is not between 1 and 1024",
                self.pool_size
            )));
        }
        let mut config = tokio_postgres::Config::from_str(&self.url).map_err(|e| {
            PgError::Options(format!(
                "key `storage.url`: `{}` is not a PostgreSQL connection string: {}",
                self.redacted_url(),
                crate::describe(&e)
            ))
        })?;
        if config.get_password().is_some() {
            return Err(PgError::Options(format!(
                "key `storage.url`: `{}` carries a password; put it in the file named by `storage.password_file` instead, so it never sits in the configuration",
                self.redacted_url()
            )));
        }
        if config.get_user().is_none() {
            return Err(PgError::Options(format!(
                "key `storage.url`: `{}` names no user",
                self.redacted_url()
            )));
        }
        let tls = match (self.ca_file.is_some(), config.get_ssl_mode()) {
            (true, tokio_postgres::config::SslMode::Disable) => {
                return Err(PgError::Options(format!(
                    "key `storage.url`: `{}` says sslmode=disable, but `storage.ca_file` asks for TLS",
                    self.redacted_url()
                )));
            }
            (true, _) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                true
            }
            (false, tokio_postgres::config::SslMode::Require) => {
                return Err(PgError::Options(format!(
                    "key `storage.url`: `{}` requires TLS: set `storage.ca_file` to the CA that signs the database's certificate",
                    self.redacted_url()
                )));
            }
            (false, _) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                false
            }
        };
        match (&self.client_cert, &self.client_key, &self.ca_file) {
            (Some(_), None, _) => {
                return Err(PgError::Options(
                    "key `storage.client_cert`: needs `storage.client_key`, its private key".into(),
                ));
            }
            (None, Some(_), _) => {
                return Err(PgError::Options(
                    "key `storage.client_key`: needs `storage.client_cert`, its certificate".into(),
                ));
            }
            (Some(_), Some(_), None) => {
                return Err(PgError::Options(
                    "key `storage.client_cert`: a client certificate is presented over TLS only: set `storage.ca_file` to the CA that signs the database's certificate".into(),
                ));
            }
            _ => {}
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives_idle(Duration::from_secs(30));
        config.application_name(format!("tresor/{}", self.node_id));
        Ok((config, tls))
    }
}

fn validate_node_id(id: &str) -> Result<(), PgError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(PgError::Options(format!(
            "key `storage.node_id`: must be 1 to {MAX_NODE_ID} of A-Z a-z 0-9 . _ - (got {} bytes)",
            id.len()
        )))
    }
}

/// The password file libpq would read: `PGPASSFILE` when set, else `~/.pgpass` when it
/// exists. What the server's configuration uses when `storage.password_file` is not set.
pub fn default_passfile() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let path = PathBuf::from(home).join(".pgpass");
    path.is_file().then_some(path)
}

/// `url` with every password replaced by `***`: the password of a URL's user part, and any
/// `password` parameter (URL query or key/value form).
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let scheme = ["postgresql://", "postgres://"]
        .into_iter()
        .find(|s| url.starts_with(s));
    match scheme {
        Some(scheme) => {
            let rest = &url[scheme.len()..];
            let (authority_end, _) = rest
                .char_indices()
                .find(|(_, c)| matches!(c, '/' | '?'))
                .unwrap_or((rest.len(), ' '));
            let (authority, tail) = rest.split_at(authority_end);
            let authority = match authority.rsplit_once('@') {
                Some((user_info, host)) => match user_info.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => format!("{user_info}@{host}"),
                },
                None => authority.to_owned(),
            };
            let tail = match tail.split_once('?') {
                Some((path, query)) => {
                    let query: Vec<String> = query
                        .split('&')
                        .map(|pair| match pair.split_once('=') {
                            Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                            _ => pair.to_owned(),
                        })
                        .collect();
                    format!("{path}?{}", query.join("&"))
                }
                None => tail.to_owned(),
            };
            format!("{scheme}{authority}{tail}")
        }
        None => redact_key_value(url),
    }
}

fn is_secret_param(key: &str) -> bool {
    key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sslpassword")
}

/// The key/value form (`host=db user=tresor password='x y'`): values of secret keys become `***`.
fn redact_key_value(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            return out;
        }
        let Some(eq) = trimmed.find('=') else {
            if !out.is_empty() {
                out.push(' ');
            }
            // Not key=value: keep nothing of it (it could be a stray secret).
            out.push_str("***");
            return out;
        };
        let key = trimmed[..eq].trim();
        let after = trimmed[eq + 1..].trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('\'') {
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '\'' {
                    end = i;
                    break;
                }
            }
            (
                &after[..(end + 2).min(after.len())],
                &quoted[(end + 1).min(quoted.len())..],
            )
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if !out.is_empty() {
            out.push(' ');
        }
        if is_secret_param(key) {
            out.push_str(&format!("{key}=***"));
        } else {
            out.push_str(&format!("{key}={value}"));
        }
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-Pa55";

    #[test]
    fn urls_lose_every_password() {
        for (url, expected) in [
            (
                "postgresql://tresor:s3cr3t-Pa55@db.example:5432/tresor?sslmode=require",
                "postgresql://tresor:***@db.example:5432/tresor?sslmode=require",
            ),
            (
                "postgres://tresor@db/tresor?password=s3cr3t-Pa55&application_name=x",
                "postgres://tresor@db/tresor?password=***&application_name=x",
            ),
            (
                "host=db user=tresor password='s3cr3t-Pa55 x' dbname=tresor",
                "host=db user=tresor password=*** dbname=tresor",
            ),
            (
                "host=db password=s3cr3t-Pa55 user=tresor",
                "host=db password=*** user=tresor",
            ),
            (
                "postgresql://tresor@db/tresor",
                "postgresql://tresor@db/tresor",
            ),
        ] {
            let redacted = redact_url(url);
            assert_eq!(redacted, expected);
            assert!(!redacted.contains(SECRET));
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_being_repeated() {
        for url in [
            "postgresql://tresor:s3cr3t-Pa55@127.0.0.1/tresor",
            "host=127.0.0.1 user=tresor password=s3cr3t-Pa55",
        ] {
            let e = PgOptions::new(url, "a").driver_config().unwrap_err();
            let text = e.to_string();
            assert!(text.contains("carries a password"), "{text}");
            assert!(!text.contains(SECRET), "{text}");
            assert!(!format!("{e:?}").contains(SECRET));
        }
    }

    #[test]
    fn bad_options_are_refused_by_name() {
        let cases: [(PgOptions, &str); 9] = [
            (PgOptions::new("postgresql://t@h/d", ""), "storage.node_id"),
            (
                PgOptions::new("postgresql://t@h/d", "a b"),
                "storage.node_id",
            ),
            (
                PgOptions::new("postgresql://t@h/d", "x".repeat(65)),
                "storage.node_id",
            ),
            (
                PgOptions {
                    pool_size: 0,
                    ..PgOptions::new("postgresql://t@h/d", "a")
                },
                "storage.pool_size",
            ),
            (PgOptions::new("postgresql://h/d", "a"), "names no user"),
            (
                PgOptions::new("postgresql://t@h/d?sslmode=require", "a"),
                "storage.ca_file",
            ),
            (
                PgOptions {
                    client_cert: Some("c.pem".into()),
                    ca_file: Some("ca.pem".into()),
                    ..PgOptions::new("postgresql://t@h/d", "a")
                },
                "needs `storage.client_key`",
            ),
            (
                PgOptions {
                    client_key: Some("k.pem".into()),
                    ca_file: Some("ca.pem".into()),
                    ..PgOptions::new("postgresql://t@h/d", "a")
                },
                "needs `storage.client_cert`",
            ),
            (
                PgOptions {
                    client_cert: Some("c.pem".into()),
                    client_key: Some("k.pem".into()),
                    ..PgOptions::new("postgresql://t@h/d", "a")
                },
                "over TLS only",
            ),
        ];
        for (options, expected) in cases {
            let e = options.driver_config().unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
    }

    #[test]
    fn the_password_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let options = PgOptions {
            password_file: Some(file.clone()),
            ..PgOptions::new("postgresql://t@h/d", "a")
        };
        let (config, tls) = options.driver_config().unwrap();
        assert_eq!(config.get_password(), Some(SECRET.as_bytes()));
        assert!(!tls);
        std::fs::write(&file, "").unwrap();
        let e = options.driver_config().unwrap_err().to_string();
        assert!(e.contains("one line"), "{e}");
        let missing = PgOptions {
            password_file: Some(dir.path().join("absent")),
            ..PgOptions::new("postgresql://t@h/d", "a")
        };
        let e = missing.driver_config().unwrap_err().to_string();
        assert!(e.contains("storage.password_file"), "{e}");
    }

    /// libpq's password file is matched on host, port, database and user, and only read when
    /// `password_file` is not set.
    #[test]
    fn the_libpq_password_file_is_matched_to_the_connection() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let passfile = dir.path().join("pgpass");
        std::fs::write(
            &passfile,
            format!("h:5432:d:other:no\nh:5433:d:t:no\nh:5432:d:t:{SECRET}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
        let options = PgOptions {
            passfile: Some(passfile.clone()),
            ..PgOptions::new("postgresql://t@h/d", "a")
        };
        let (config, _) = options.driver_config().unwrap();
        assert_eq!(config.get_password(), Some(SECRET.as_bytes()));
        // No line for this database: no password (the server then asks for one, or not).
        let other = PgOptions {
            passfile: Some(passfile.clone()),
            ..PgOptions::new("postgresql://t@h/elsewhere", "a")
        };
        assert_eq!(other.driver_config().unwrap().0.get_password(), None);
        // `password_file` wins.
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-password-file\n").unwrap();
        let both = PgOptions {
            password_file: Some(pw),
            ..options.clone()
        };
        assert_eq!(
            both.driver_config().unwrap().0.get_password(),
            Some(&b"from-password-file"[..])
        );
        std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = options.driver_config().unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains(SECRET), "{e}");
    }
}
