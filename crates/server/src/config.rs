//! `tresor.toml`: everything the server needs to start (docs/configuration.md lists every
//! option and its default). Unknown keys and bad values are refused at start, naming the file,
//! the key and the reason; relative paths are relative to the file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use tresor_core::keys::validate_environment_name;
use tresor_wire::duration::parse_seconds;

/// The server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Environment name bound into every ciphertext (`production`, `test`, …).
    pub environment: String,
    /// TLS files and client authentication.
    pub tls: TlsConfig,
    /// Where data lives.
    pub storage: StorageConfig,
    /// Where policy files live.
    pub policies: PoliciesConfig,
    /// Request and connection limits.
    #[serde(default)]
    pub limits: Limits,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Unsealing.
    #[serde(default)]
    pub unseal: UnsealConfig,
    /// Dual control.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// The audit trail: required; `audit = "disabled"` turns it off explicitly.
    pub audit: AuditSetting,
    /// This node.
    #[serde(default)]
    pub node: NodeConfig,
}

/// `[node]`: this server node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node identity key (created owner-only on first start, its `.pub` beside it): keep it
    /// outside the data directory. Default `node-identity.key` beside the configuration file.
    #[serde(default = "default_identity_key")]
    pub identity_key: PathBuf,
    /// Peer unseal (opt-in; docs/deployment.md, "Unsealing"): the nodes this one asks for the
    /// root key while it is sealed, each named by its address and the fingerprint of its
    /// identity key. Only these are believed: the store, which an attacker may write, names
    /// no peer. Empty: custodians unseal this node.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// The client certificate this node presents to its peers (a policy on each peer grants
    /// its principal `peer-unseal`). Required with `peers`.
    #[serde(default)]
    pub peer_cert: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub peer_key: Option<PathBuf>,
    /// The CA the peers' server certificates chain to. Default: `tls.client_ca`.
    #[serde(default)]
    pub peer_ca: Option<PathBuf>,
}

/// One entry of `node.peers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// `https://host:port` of the peer.
    pub address: String,
    /// The fingerprint of the peer's node identity key (its `NODE.pub`).
    pub fingerprint: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            identity_key: default_identity_key(),
            peers: Vec::new(),
            peer_cert: None,
            peer_key: None,
            peer_ca: None,
        }
    }
}

impl NodeConfig {
    fn validate(&mut self) -> Result<(), String> {
        for (i, peer) in self.peers.iter_mut().enumerate() {
            peer.fingerprint = tresor_wire::peers::check_fingerprint(&peer.fingerprint)
                .map_err(|e| format!("key `node.peers[{i}].fingerprint`: {e}"))?;
            if !peer.address.starts_with("https://") {
                return Err(format!(
                    "key `node.peers[{i}].address`: `{}` must start with https:// (peers speak mutual TLS)",
                    peer.address
                ));
            }
        }
        if !self.peers.is_empty() && (self.peer_cert.is_none() || self.peer_key.is_none()) {
            return Err("key `node.peer_cert`/`node.peer_key`: required with `node.peers` (the client certificate this node shows its peers)".into());
        }
        if self.peers.is_empty() && (self.peer_cert.is_some() || self.peer_key.is_some()) {
            return Err("key `node.peer_cert`/`node.peer_key`: only with `node.peers`".into());
        }
        Ok(())
    }
}

fn default_identity_key() -> PathBuf {
    PathBuf::from("node-identity.key")
}

/// `[audit]`, or `audit = "disabled"`.
#[derive(Debug, Clone)]
pub enum AuditSetting {
    /// Write the audit trail to a file.
    File(AuditFileConfig),
    /// `audit = "disabled"`: no audit trail (development only; the server warns).
    Disabled(Disabled),
}

/// The literal `"disabled"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    /// The only accepted word.
    Disabled,
}

impl<'de> Deserialize<'de> for AuditSetting {
    // By hand rather than `untagged`, so a mistake inside `[audit]` is reported as itself and
    // not as "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AuditSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an [audit] table, or the string \"disabled\"")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<AuditSetting, E> {
                match value {
                    "disabled" => Ok(AuditSetting::Disabled(Disabled::Disabled)),
                    other => Err(E::custom(format!(
                        "`{other}` is not \"disabled\"; to keep an audit trail use an [audit] table"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AuditSetting, A::Error> {
                AuditFileConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(AuditSetting::File)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Where and how the audit trail is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFileConfig {
    /// The current log file (rotated files get a numeric suffix).
    pub path: PathBuf,
    /// The checkpoint signing key (created on first start; its public half is written beside it
    /// as `.pub`). Default: the log path with extension `key`.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// Rotate after this many bytes (default 64 MiB).
    #[serde(default = "default_audit_file_bytes")]
    pub max_file_bytes: u64,
    /// A signed checkpoint at least every this many lines (default 1000).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
}

fn default_audit_file_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_checkpoint_every() -> u64 {
    1000
}

impl AuditFileConfig {
    /// The writer's settings.
    pub fn to_audit_config(&self) -> crate::audit::AuditConfig {
        crate::audit::AuditConfig {
            path: self.path.clone(),
            signing_key: self
                .signing_key
                .clone()
                .unwrap_or_else(|| self.path.with_extension("key")),
            max_file_bytes: self.max_file_bytes,
            checkpoint_every: self.checkpoint_every,
            node_id: None,
        }
    }
}

/// Dual control.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// How long a dangerous operation waits for custodian signatures.
    #[serde(deserialize_with = "seconds")]
    pub ttl: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            ttl: crate::approvals::DEFAULT_APPROVAL_TTL,
        }
    }
}

/// TLS settings. Clients must present a certificate issued by `client_ca`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA certificate(s) that issue client certificates (PEM).
    pub client_ca: PathBuf,
    /// Certificate revocation lists (PEM or DER), re-read on SIGHUP.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Accept the subject CN as principal when a client certificate has no SPIFFE URI SAN.
    #[serde(default)]
    pub allow_cn_fallback: bool,
}

/// Storage backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Backend kind; `sled` is the embedded default.
    #[serde(default)]
    pub backend: Backend,
    /// Directory of the sled store (sled only; required there).
    #[serde(default)]
    pub path: PathBuf,
    /// PostgreSQL: the connection URL, without a password (logged only redacted).
    #[serde(default)]
    pub url: Option<String>,
    /// PostgreSQL: connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: PEM file of the CA that signs the database's certificate (TLS required).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL: this node's name in the change log (and its audit log).
    #[serde(default)]
    pub node_id: Option<String>,
    /// PostgreSQL: a file holding the database password. Without it, libpq's password file
    /// (`PGPASSFILE`, else `~/.pgpass`) is read, if there is one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PostgreSQL: PEM certificate chain the node presents to the database (`cert`
    /// authentication); needs `ca_file` and `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PostgreSQL: PEM private key of `client_cert` (owner-only).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// PostgreSQL: the node answers only while its last confirmed read of the change log is
    /// younger than this many seconds.
    #[serde(default = "default_max_staleness", deserialize_with = "seconds")]
    pub max_staleness: u64,
    /// PostgreSQL: the background-job lease's time to live, in seconds.
    #[serde(default = "default_job_lease", deserialize_with = "seconds")]
    pub job_lease: u64,
}

fn default_job_lease() -> u64 {
    10
}

fn default_max_staleness() -> u64 {
    1
}

fn default_pool_size() -> usize {
    8
}

impl StorageConfig {
    fn validate(&self) -> Result<(), String> {
        match self.backend {
            Backend::Sled => {
                if self.path.as_os_str().is_empty() {
                    return Err("key `storage.path`: required with the sled backend (the store's directory)".into());
                }
                for (key, set) in [
                    ("url", self.url.is_some()),
                    ("ca_file", self.ca_file.is_some()),
                    ("node_id", self.node_id.is_some()),
                    ("password_file", self.password_file.is_some()),
                    ("client_cert", self.client_cert.is_some()),
                    ("client_key", self.client_key.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "key `storage.{key}`: only for `backend = \"postgresql\"`"
                        ));
                    }
                }
            }
            Backend::Postgresql => {
                if !self.path.as_os_str().is_empty() {
                    return Err("key `storage.path`: only for the sled backend; PostgreSQL is reached through `storage.url`".into());
                }
                if self.url.is_none() {
                    return Err(
                        "key `storage.url`: required with `backend = \"postgresql\"`".into(),
                    );
                }
                if !(1..=3600).contains(&self.max_staleness) {
                    return Err(format!(
                        "key `storage.max_staleness`: {} s is not between 1 and 3600",
                        self.max_staleness
                    ));
                }
                if !(1..=600).contains(&self.job_lease) {
                    return Err(format!(
                        "key `storage.job_lease`: {} s is not between 1 and 600",
                        self.job_lease
                    ));
                }
                if self.node_id.is_none() {
                    return Err("key `storage.node_id`: required with `backend = \"postgresql\"` (each node names itself in the change log)".into());
                }
                // Everything else (URL form, no password in it, node_id syntax, pool size) is
                // checked here too, so a mistake is reported at start, before anything opens.
                let options = self.postgres_options().expect("url and node_id are set");
                options.check().map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// The PostgreSQL backend's options (`None` unless `url` and `node_id` are set).
    pub fn postgres_options(&self) -> Option<tresor_postgres::PgOptions> {
        Some(tresor_postgres::PgOptions {
            url: self.url.clone()?,
            pool_size: self.pool_size,
            ca_file: self.ca_file.clone(),
            node_id: self.node_id.clone()?,
            password_file: self.password_file.clone(),
            // libpq's convention, for operators who keep database passwords that way.
            passfile: match self.password_file {
                Some(_) => None,
                None => tresor_postgres::default_passfile(),
            },
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        })
    }
}

/// Storage backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// sled on local disk.
    #[default]
    Sled,
    /// PostgreSQL, shared by several nodes (docs/deployment.md).
    Postgresql,
}

/// Policy files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// Directory of `*.toml` policy files.
    pub dir: PathBuf,
}

/// Limits on what one client can make the server hold. Each has a safe default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most items in one `batch_input`.
    pub max_batch_items: usize,
    /// Time allowed for the TLS handshake.
    #[serde(deserialize_with = "seconds")]
    pub handshake_timeout: u64,
    /// Time allowed to send a request's headers (slow-loris guard).
    #[serde(deserialize_with = "seconds")]
    pub header_read_timeout: u64,
    /// Time allowed to send a request's body.
    #[serde(deserialize_with = "seconds")]
    pub body_read_timeout: u64,
    /// A keep-alive connection with no request for this long is closed.
    #[serde(deserialize_with = "seconds")]
    pub idle_timeout: u64,
    /// Most open connections; more are closed at once.
    pub max_connections: usize,
    /// Failed handshakes an address may have in a minute before its connections are delayed.
    pub handshake_failures_allowed: u32,
    /// Longest delay (seconds) imposed on an address that keeps failing the handshake.
    #[serde(deserialize_with = "seconds")]
    pub handshake_failure_max_delay: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_items: 10_000,
            handshake_timeout: 10,
            header_read_timeout: 10,
            body_read_timeout: 30,
            idle_timeout: 120,
            max_connections: 4096,
            handshake_failures_allowed: 10,
            handshake_failure_max_delay: 10,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Unsealing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnsealConfig {
    /// Unseal progress older than this is discarded.
    #[serde(deserialize_with = "seconds")]
    pub timeout: u64,
}

impl Default for UnsealConfig {
    fn default() -> Self {
        UnsealConfig { timeout: 600 }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with the key and position where known.
    pub message: String,
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|message| ConfigError {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let message = e.to_string().trim_end().to_owned();
            if message.contains("missing field `audit`") {
                format!("{message}\nadd an [audit] section with `path = \"audit.log\"` (or, for development only, `audit = \"disabled\"`)")
            } else {
                message
            }
        })?;
        if let AuditSetting::File(audit) = &config.audit {
            if audit.max_file_bytes < 4096 || audit.checkpoint_every == 0 {
                return Err("key `audit`: max_file_bytes must be at least 4096 and checkpoint_every at least 1".into());
            }
        }
        config.validate()?;
        config.node.validate()?;
        config.resolve_paths(base);
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        validate_environment_name(&self.environment)
            .map_err(|e| format!("key `environment`: {e}"))?;
        self.storage.validate()?;
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_body_bytes", l.max_body_bytes as u64),
            ("limits.max_batch_items", l.max_batch_items as u64),
            ("limits.handshake_timeout", l.handshake_timeout),
            ("limits.header_read_timeout", l.header_read_timeout),
            ("limits.body_read_timeout", l.body_read_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.max_connections", l.max_connections as u64),
            ("unseal.timeout", self.unseal.timeout),
            ("approvals.ttl", self.approvals.ttl),
        ] {
            if value == 0 {
                return Err(format!("key `{key}`: must be greater than 0"));
            }
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log.level.as_str()) {
            return Err(format!(
                "key `log.level`: `{}` is not one of error, warn, info, debug, trace",
                self.log.level
            ));
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.tls.cert);
        resolve(&mut self.tls.key);
        resolve(&mut self.tls.client_ca);
        self.tls.crls.iter_mut().for_each(resolve);
        if !self.storage.path.as_os_str().is_empty() {
            resolve(&mut self.storage.path);
        }
        if let Some(file) = &mut self.storage.ca_file {
            resolve(file);
        }
        for file in [
            &mut self.storage.password_file,
            &mut self.storage.client_cert,
            &mut self.storage.client_key,
        ]
        .into_iter()
        .flatten()
        {
            resolve(file);
        }
        resolve(&mut self.node.identity_key);
        for file in [
            &mut self.node.peer_cert,
            &mut self.node.peer_key,
            &mut self.node.peer_ca,
        ]
        .into_iter()
        .flatten()
        {
            resolve(file);
        }
        resolve(&mut self.policies.dir);
        if let AuditSetting::File(audit) = &mut self.audit {
            resolve(&mut audit.path);
            if let Some(key) = &mut audit.signing_key {
                resolve(key);
            }
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8200))
}

/// Accepts `30`, `"30"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(text) => parse_seconds(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration (e.g. 30, \"30s\", \"5m\", \"1h\")"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
environment = "test"
[tls]
cert = "server.pem"
key = "server-key.pem"
client_ca = "ca.pem"
[storage]
path = "data"
[policies]
dir = "policies"
[audit]
path = "audit.log"
"#;

    #[test]
    fn minimal_config_gets_defaults_and_resolved_paths() {
        let config = Config::parse(MINIMAL, Path::new("/etc/tresor")).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8200".parse().unwrap());
        assert_eq!(config.tls.cert, Path::new("/etc/tresor/server.pem"));
        assert_eq!(config.storage.path, Path::new("/etc/tresor/data"));
        assert_eq!(config.limits.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(config.log.format, LogFormat::Text);
        match &config.audit {
            AuditSetting::File(audit) => {
                let audit = audit.to_audit_config();
                assert_eq!(audit.path, Path::new("/etc/tresor/audit.log"));
                assert_eq!(audit.signing_key, Path::new("/etc/tresor/audit.key"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_accept_numbers_and_units() {
        let text = format!("{MINIMAL}\n[limits]\nidle_timeout = \"2m\"\nheader_read_timeout = 5\n");
        let config = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(
            (
                config.limits.idle_timeout,
                config.limits.header_read_timeout
            ),
            (120, 5)
        );
    }

    #[test]
    fn refusals_name_key_and_reason() {
        let unknown = Config::parse(&format!("{MINIMAL}\nlisten_addr = \"x\"\n"), Path::new("."))
            .unwrap_err();
        assert!(unknown.contains("unknown field `listen_addr`"), "{unknown}");
        let nested = Config::parse(
            &format!("{MINIMAL}\n[limits]\nmax_body = 1\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(nested.contains("unknown field `max_body`"), "{nested}");
        let zero = Config::parse(
            &format!("{MINIMAL}\n[limits]\nmax_connections = 0\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(zero.contains("limits.max_connections"), "{zero}");
        let bad_env =
            Config::parse(&MINIMAL.replace("\"test\"", "\"Prod\""), Path::new(".")).unwrap_err();
        assert!(bad_env.contains("environment"), "{bad_env}");
        let bad_duration = Config::parse(
            &format!("{MINIMAL}\n[limits]\nidle_timeout = \"soon\"\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            bad_duration.contains("`soon` is not a duration"),
            "{bad_duration}"
        );
        let missing = Config::parse("environment = \"test\"\n", Path::new(".")).unwrap_err();
        assert!(missing.contains("missing field `tls`"), "{missing}");
        let bad_level = Config::parse(
            &format!("{MINIMAL}\n[log]\nlevel = \"loud\"\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(bad_level.contains("log.level"), "{bad_level}");
        let without_audit = MINIMAL.replace("[audit]\npath = \"audit.log\"\n", "");
        let missing_audit = Config::parse(&without_audit, Path::new(".")).unwrap_err();
        assert!(
            missing_audit.contains("audit = \"disabled\""),
            "{missing_audit}"
        );
        let disabled = Config::parse(
            &format!("audit = \"disabled\"\n{without_audit}"),
            Path::new("."),
        )
        .unwrap();
        assert!(matches!(
            disabled.audit,
            AuditSetting::Disabled(Disabled::Disabled)
        ));
        let wrong_word =
            Config::parse(&format!("audit = \"off\"\n{without_audit}"), Path::new("."))
                .unwrap_err();
        assert!(
            wrong_word.contains("`off` is not \"disabled\""),
            "{wrong_word}"
        );
        let typo = Config::parse(
            &MINIMAL.replace("path = \"audit.log\"", "file = \"audit.log\""),
            Path::new("."),
        )
        .unwrap_err();
        assert!(typo.contains("unknown field `file`"), "{typo}");
    }

    #[test]
    fn peers_need_a_certificate_a_fingerprint_and_https() {
        let fp = "3f:9a:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd";
        let node = |table: &str| {
            Config::parse(&format!("{MINIMAL}\n[node]\n{table}"), Path::new("/etc/t"))
        };
        let ok = node(&format!(
            "peer_cert = \"n.pem\"\npeer_key = \"n-key.pem\"\npeers = [{{ address = \"https://a:8200\", fingerprint = \"{}\" }}]\n",
            fp.to_uppercase()
        ))
        .unwrap();
        assert_eq!(ok.node.peers[0].fingerprint, fp);
        assert_eq!(ok.node.peer_cert.unwrap(), Path::new("/etc/t/n.pem"));
        for (table, expected) in [
            (
                format!("peers = [{{ address = \"https://a:8200\", fingerprint = \"{fp}\" }}]\n"),
                "required with `node.peers`",
            ),
            (
                format!("peer_cert = \"n.pem\"\npeer_key = \"k.pem\"\npeers = [{{ address = \"http://a:8200\", fingerprint = \"{fp}\" }}]\n"),
                "must start with https://",
            ),
            (
                "peer_cert = \"n.pem\"\npeer_key = \"k.pem\"\npeers = [{ address = \"https://a:8200\", fingerprint = \"3f:9a\" }]\n".to_owned(),
                "node.peers[0].fingerprint",
            ),
            (
                "peer_cert = \"n.pem\"\npeer_key = \"k.pem\"\n".to_owned(),
                "only with `node.peers`",
            ),
            (
                format!("peers = [{{ address = \"https://a:8200\", fingerprint = \"{fp}\", trust = true }}]\n"),
                "unknown field `trust`",
            ),
        ] {
            let refused = node(&table).unwrap_err();
            assert!(refused.contains(expected), "{table}: {refused}");
        }
    }
}
