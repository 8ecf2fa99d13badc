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
    /// The custodian's identity file (NAME.key).
    #[arg(long, value_name = "FILE.key")]
    pub(crate) identity: PathBuf,
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

/// `tresor custodian keygen --name NAME --out PREFIX`.
pub(crate) fn keygen(
    name: &str,
    out: &Path,
    passphrase: &PassphraseArgs,
) -> anyhow::Result<(PathBuf, PathBuf)> {
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
    let identity = CustodianIdentity::generate(name)?;
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
    Ok((public_path, secret_path))
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
