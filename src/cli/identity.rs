//! Custodian identity files on the command line: where the passphrase comes from, and
//! `tresor custodian keygen`.
//!
//! The passphrase is read from `--passphrase-file`, else `TRESOR_PASSPHRASE`, else the terminal
//! without echo. It only ever unlocks the identity file locally; it never leaves this process.

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use tresor_crypto::identity::CustodianIdentity;
use zeroize::Zeroizing;

#[derive(Args, Debug, Clone)]
pub(crate) struct IdentityArgs {
    /// The custodian's identity file (NAME.key). The vault nodes this custodian trusts are
    /// pinned beside it in NAME.nodes (written by `tresor operator init`).
    #[arg(long, value_name = "FILE.key")]
    pub(crate) identity: PathBuf,
    /// Trust this node fingerprint too (repeatable), in addition to NAME.nodes.
    #[arg(long = "node", value_name = "FINGERPRINT")]
    pub(crate) nodes: Vec<String>,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArgs,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct PassphraseArgs {
    /// Read the passphrase from this file (first line) instead of the terminal.
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    /// The passphrase, asked on the terminal (twice when `confirm`) if no file or variable gives it.
    pub(crate) fn read(&self, prompt: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
        if let Some(path) = &self.passphrase_file {
            let text = Zeroizing::new(
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            );
            return non_empty(Zeroizing::new(
                text.lines().next().unwrap_or_default().to_owned(),
            ));
        }
        if let Ok(value) = std::env::var("TRESOR_PASSPHRASE") {
            return non_empty(Zeroizing::new(value));
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "no passphrase: not asking for it, this is not a terminal; set TRESOR_PASSPHRASE or --passphrase-file"
            );
        }
        let first = Zeroizing::new(
            rpassword::prompt_password(prompt)
                .context("reading the passphrase from the terminal")?,
        );
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password("Repeat it: ").context("reading the passphrase")?,
            );
            if *first != *again {
                bail!("the passphrases differ");
            }
        }
        non_empty(first)
    }
}

fn non_empty(passphrase: Zeroizing<String>) -> anyhow::Result<Zeroizing<String>> {
    if passphrase.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(passphrase)
}

impl IdentityArgs {
    /// Opens the identity file with its passphrase.
    pub(crate) fn open(&self) -> anyhow::Result<CustodianIdentity> {
        let text = fs::read_to_string(&self.identity)
            .with_context(|| format!("reading {}", self.identity.display()))?;
        // Said before the passphrase is asked for: it could not open this file anyway.
        if let Ok(public) = tresor_crypto::identity::CustodianPublicKey::from_json(&text) {
            bail!(
                "{} is the public half of custodian {}'s identity; --identity needs the secret half, {} (written beside it by `tresor custodian keygen`)",
                self.identity.display(),
                public.name(),
                self.identity.with_extension("key").display()
            );
        }
        let passphrase = self.passphrase.read(
            &format!("Passphrase for {}: ", self.identity.display()),
            false,
        )?;
        CustodianIdentity::from_encrypted_json(&text, passphrase.as_bytes())
            .with_context(|| format!("{}", self.identity.display()))
    }
}

impl IdentityArgs {
    /// The node fingerprints this custodian trusts: NAME.nodes beside the identity, and `--node`.
    /// None at all is refused here, before anything is fetched or sent.
    pub(crate) fn pinned_nodes(&self) -> anyhow::Result<Vec<String>> {
        let path = nodes_file(&self.identity);
        let mut pinned = read_pins(&path)?;
        pinned.extend(self.nodes.iter().map(|n| n.trim().to_ascii_lowercase()));
        if pinned.is_empty() {
            bail!(
                "no vault node is pinned for this custodian: {} does not exist and no --node was given. \
                 `tresor operator init` writes it beside each custodian's .pub; give it to the custodian with their .key, \
                 or pin a fingerprint you checked with the operators: tresor operator trust-node FINGERPRINT --identity {}",
                path.display(),
                self.identity.display()
            );
        }
        Ok(pinned)
    }
}

/// Where the trusted node fingerprints of the custodian whose identity (or public) file is
/// `path` are kept: beside it, as NAME.nodes.
pub(crate) fn nodes_file(path: &Path) -> PathBuf {
    path.with_extension("nodes")
}

/// The fingerprints in a .nodes file (one per line; `#` starts a comment); none if it is absent.
pub(crate) fn read_pins(path: &Path) -> anyhow::Result<Vec<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default().trim())
            .filter(|line| !line.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Adds `fingerprint` to the .nodes file at `path` (creating it) unless it is there already.
/// Returns whether it was added.
pub(crate) fn pin_node(path: &Path, fingerprint: &str, note: &str) -> anyhow::Result<bool> {
    let fingerprint = fingerprint.trim().to_ascii_lowercase();
    let valid = fingerprint.len() == 47
        && fingerprint
            .split(':')
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        bail!(
            "`{fingerprint}` is not a node fingerprint: 16 colon-separated hex pairs, as `tresor operator init` and `tresor status` print it"
        );
    }
    if read_pins(path)?.contains(&fingerprint) {
        return Ok(false);
    }
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{fingerprint}  # {note}")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// `tresor custodian keygen --name NAME --out PREFIX [--principal SPIFFE-ID]`.
pub(crate) fn keygen(
    name: &str,
    principal: Option<&str>,
    out: &Path,
    passphrase: &PassphraseArgs,
) -> anyhow::Result<(PathBuf, PathBuf, String)> {
    let public_path = out.with_extension("pub");
    let secret_path = out.with_extension("key");
    for path in [&public_path, &secret_path] {
        if path.exists() {
            bail!(
                "{} exists already; refusing to overwrite an identity",
                path.display()
            );
        }
    }
    let identity = match principal {
        Some(principal) => {
            tresor_server::tls::validate_spiffe_id(principal).with_context(|| {
                format!(
                    "--principal `{principal}`: the SPIFFE ID of the custodian's client certificate"
                )
            })?;
            CustodianIdentity::generate_for(name, principal)?
        }
        None => CustodianIdentity::generate(name)?,
    };
    let phrase = passphrase.read(&format!("New passphrase for custodian {name}: "), true)?;
    let encrypted = identity.to_encrypted_json(phrase.as_bytes())?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .with_context(|| format!("writing {}", secret_path.display()))?;
    file.write_all(encrypted.as_bytes())?;
    fs::write(&public_path, identity.public().to_json())
        .with_context(|| format!("writing {}", public_path.display()))?;
    Ok((public_path, secret_path, identity.public().fingerprint()))
}

/// Reads `.pub` files.
pub(crate) fn read_public_keys(
    paths: &[PathBuf],
) -> anyhow::Result<Vec<tresor_crypto::identity::CustodianPublicKey>> {
    paths
        .iter()
        .map(|path| {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            if is_secret_identity(&text) {
                bail!(
                    "{} is a custodian's secret identity file; --custodian takes the public half, {} (and the .key file never leaves its custodian)",
                    path.display(),
                    path.with_extension("pub").display()
                );
            }
            tresor_crypto::identity::CustodianPublicKey::from_json(&text)
                .with_context(|| format!("{}", path.display()))
        })
        .collect()
}

/// Whether `text` is an encrypted identity file (`NAME.key`).
fn is_secret_identity(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|v| v["type"] == "tresor-custodian-identity-v1")
}
