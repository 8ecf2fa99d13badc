//! `tresor pki ca|server|client|crl`: a small certificate authority for teams without a PKI
//! (docs/pki.md), on the same code `tresor dev` uses (`tresor_server::tls::pki`). Every
//! private key is written owner-only (0600); nothing existing is overwritten except the CRL,
//! which is replaced atomically (the server re-reads it on SIGHUP).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tresor_server::tls::pki::{DevCa, IssuedCert};
use tresor_server::tls::validate_spiffe_id;

use super::output;

const DAY: Duration = Duration::from_secs(86_400);
/// Apple platforms refuse server certificates valid for longer (and browsers follow).
const MAX_SERVER_DAYS: u32 = 397;

#[derive(Subcommand)]
pub(crate) enum PkiCommand {
    /// Create a CA: PREFIX.pem (give it to the server as [tls] client_ca and to clients as
    /// --cacert) and PREFIX-key.pem (its private key, 0600: keep it off the server).
    Ca {
        /// The CA's subject CN (default: `Tresor CA` and 8 random hex digits, so that two CAs
        /// never share a name).
        #[arg(long)]
        name: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Output prefix: writes PREFIX.pem and PREFIX-key.pem.
        #[arg(long, value_name = "PREFIX", default_value = "ca")]
        out: PathBuf,
    },
    /// Issue a server certificate (serverAuth) for host names and IP addresses.
    Server {
        /// DNS names and IP addresses clients connect to (each becomes a SAN; the first is the CN).
        #[arg(value_name = "HOST", required = true)]
        hosts: Vec<String>,
        #[command(flatten)]
        ca: CaArgs,
        /// Validity in days (at most 397).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SERVER_DAYS)))]
        days: u32,
        /// Output prefix: writes PREFIX.pem and PREFIX-key.pem.
        #[arg(long, value_name = "PREFIX", default_value = "server")]
        out: PathBuf,
    },
    /// Issue a client certificate (clientAuth) whose only SAN is a SPIFFE ID: the principal
    /// policies name.
    Client {
        /// spiffe://<trust-domain>/<path>
        #[arg(value_name = "SPIFFE_ID")]
        spiffe_id: String,
        #[command(flatten)]
        ca: CaArgs,
        /// Validity in days.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Output prefix: writes PREFIX.pem and PREFIX-key.pem (default: the ID's last segment).
        #[arg(long, value_name = "PREFIX")]
        out: Option<PathBuf>,
    },
    /// Write the CA's certificate revocation list: certificates already in FILE stay revoked,
    /// each --revoke adds one; FILE is replaced atomically. Run it again before nextUpdate.
    Crl {
        /// A certificate (PEM) to revoke; repeat for several.
        #[arg(long = "revoke", value_name = "CERT.pem")]
        revoke: Vec<PathBuf>,
        #[command(flatten)]
        ca: CaArgs,
        /// Days until nextUpdate.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// The CRL file (the server's [tls] crls).
        #[arg(long, value_name = "FILE", default_value = "crl.pem")]
        out: PathBuf,
    },
}

/// Which CA signs.
#[derive(Args)]
pub(crate) struct CaArgs {
    /// The CA certificate.
    #[arg(long, value_name = "FILE", default_value = "ca.pem")]
    ca: PathBuf,
    /// The CA's private key (default: the certificate's name with `-key`, e.g. ca-key.pem).
    #[arg(long, value_name = "FILE")]
    ca_key: Option<PathBuf>,
}

impl CaArgs {
    fn load(&self) -> anyhow::Result<DevCa> {
        let key_path = match &self.ca_key {
            Some(path) => path.clone(),
            None => key_file_for(&self.ca),
        };
        let cert = std::fs::read_to_string(&self.ca)
            .with_context(|| format!("reading the CA certificate {}", self.ca.display()))?;
        let key = zeroize::Zeroizing::new(
            std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading the CA key {}", key_path.display()))?,
        );
        DevCa::from_pem(&cert, &key).with_context(|| {
            format!(
                "{} and {} are not a CA this command can sign with",
                self.ca.display(),
                key_path.display()
            )
        })
    }
}

/// `ca.pem` → `ca-key.pem`; `/x/root.crt` → `/x/root-key.crt`.
fn key_file_for(cert: &Path) -> PathBuf {
    let stem = cert.file_stem().unwrap_or_default().to_string_lossy();
    let name = match cert.extension() {
        Some(ext) => format!("{stem}-key.{}", ext.to_string_lossy()),
        None => format!("{stem}-key"),
    };
    cert.with_file_name(name)
}

/// PREFIX.pem and PREFIX-key.pem (appended, so a prefix may contain dots).
fn pair(prefix: &Path) -> (PathBuf, PathBuf) {
    let text = prefix.as_os_str().to_string_lossy();
    (
        PathBuf::from(format!("{text}.pem")),
        PathBuf::from(format!("{text}-key.pem")),
    )
}

/// Refuses before anything is generated if any output exists already.
fn refuse_existing(paths: &[&Path]) -> anyhow::Result<()> {
    for path in paths {
        if path.exists() {
            bail!(
                "{} exists already; refusing to overwrite it (choose another --out, or move it away first)",
                path.display()
            );
        }
    }
    Ok(())
}

/// The CA must outlive what it issues: a chain with an expired CA fails for every client.
fn check_within_ca(ca: &DevCa, days: u32) -> anyhow::Result<Duration> {
    let validity = DAY * days;
    let left = ca
        .not_after()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    if validity > left {
        bail!(
            "the CA expires on {}, in {} day(s), before a certificate valid for {days} day(s) would: issue for fewer --days, or make a new CA",
            rfc3339_date(ca.not_after()),
            left.as_secs() / 86_400
        );
    }
    Ok(validity)
}

fn rfc3339_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = tresor_wire::time::rfc3339(secs, 0);
    text.replace(".000Z", "Z")
}

/// Writes the certificate (0644) and its key (0600), both new files.
fn write_issued(prefix: &Path, cert: &IssuedCert) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert_path, key_path) = pair(prefix);
    super::write_new(&key_path, cert.key_pem.as_bytes(), 0o600)?;
    super::write_new(&cert_path, cert.cert_pem.as_bytes(), 0o644)?;
    Ok((cert_path, key_path))
}

pub(crate) fn run(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Ca { name, days, out } => {
            let (cert_path, key_path) = pair(&out);
            refuse_existing(&[&cert_path, &key_path])?;
            let name = name.unwrap_or_else(|| {
                let suffix: String = tresor_crypto::random::array::<4>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("Tresor CA {suffix}")
            });
            let ca = DevCa::generate_for(&name, DAY * days)?;
            super::write_new(&key_path, ca.key_pem().as_bytes(), 0o600)?;
            super::write_new(&cert_path, ca.cert_pem().as_bytes(), 0o644)?;
            output::line(&format!(
                "wrote {} (the CA certificate `CN={name}`, valid until {}: the server's [tls] client_ca and every client's --cacert) and {} (its private key, mode 0600: keep it off the server)",
                cert_path.display(),
                rfc3339_date(ca.not_after()),
                key_path.display()
            ))
        }
        PkiCommand::Server {
            hosts,
            ca,
            days,
            out,
        } => {
            let (cert_path, key_path) = pair(&out);
            refuse_existing(&[&cert_path, &key_path])?;
            let ca = ca.load()?;
            let validity = check_within_ca(&ca, days)?;
            let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let cert = ca.issue_server(&hosts, validity)?;
            let (cert_path, key_path) = write_issued(&out, &cert)?;
            output::line(&format!(
                "wrote {} (serverAuth for {}, valid for {days} day(s)) and {} (its private key, mode 0600): the server's [tls] cert and key",
                cert_path.display(),
                hosts.join(", "),
                key_path.display()
            ))
        }
        PkiCommand::Client {
            spiffe_id,
            ca,
            days,
            out,
        } => {
            validate_spiffe_id(&spiffe_id)?;
            let out = match out {
                Some(out) => out,
                None => PathBuf::from(spiffe_id.rsplit('/').next().unwrap_or("client")),
            };
            let (cert_path, key_path) = pair(&out);
            refuse_existing(&[&cert_path, &key_path])?;
            let ca = ca.load()?;
            let validity = check_within_ca(&ca, days)?;
            let cert = ca.issue_client(&spiffe_id, validity)?;
            let (cert_path, key_path) = write_issued(&out, &cert)?;
            output::line(&format!(
                "wrote {} (clientAuth for {spiffe_id}, valid for {days} day(s)) and {} (its private key, mode 0600): use them as --client-cert and --client-key",
                cert_path.display(),
                key_path.display()
            ))
        }
        PkiCommand::Crl {
            revoke,
            ca,
            days,
            out,
        } => {
            let ca = ca.load()?;
            let mut revoked = match std::fs::read(&out) {
                Ok(bytes) => ca.revocations(&bytes, &out.display().to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
            };
            let kept = revoked.len();
            let now = SystemTime::now();
            let mut added = 0;
            for path in &revoke {
                let pem =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let serial = ca.serial_of(&pem, &path.display().to_string())?;
                if !revoked.iter().any(|r| r.serial == serial) {
                    revoked.push(tresor_server::tls::pki::Revocation { serial, at: now });
                    added += 1;
                }
            }
            let crl = ca.crl_of(&revoked, DAY * days)?;
            super::replace_public(&out, crl.pem.as_bytes())?;
            output::line(&format!(
                "wrote {}: {} revoked certificate(s) ({kept} kept, {added} added), next update due in {days} day(s); send the server SIGHUP to load it",
                out.display(),
                revoked.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(key_file_for(Path::new("ca.pem")), Path::new("ca-key.pem"));
        assert_eq!(
            key_file_for(Path::new("/etc/pki/root.crt")),
            Path::new("/etc/pki/root-key.crt")
        );
        assert_eq!(
            pair(Path::new("tls/tresor.example.com")),
            (
                PathBuf::from("tls/tresor.example.com.pem"),
                PathBuf::from("tls/tresor.example.com-key.pem")
            )
        );
        assert_eq!(rfc3339_date(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
