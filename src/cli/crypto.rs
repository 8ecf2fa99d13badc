//! `tresor encrypt|decrypt|rewrap|datakey|hmac TENANT/KEY`.
//!
//! Inputs come from the argument or, when it is absent, from stdin (raw bytes; a trailing
//! newline from a terminal is kept, pipe with `printf` to avoid it). Decrypted plaintext goes
//! to stdout as raw bytes in text format, base64 in JSON.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use serde_json::json;
use tresor_client::CryptoOptions;

use super::batch;
use super::connection::{ConnectionArgs, tenant_key};
use super::output::{self, Format};

#[derive(Args)]
pub(crate) struct Options {
    /// Derivation context (for derived keys).
    #[arg(long)]
    context: Option<String>,
    /// Associated data bound to the ciphertext (needed again to decrypt).
    #[arg(long)]
    associated_data: Option<String>,
    #[command(flatten)]
    connection: ConnectionArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

impl Options {
    fn crypto(&self, key_version: Option<u32>) -> CryptoOptions {
        CryptoOptions {
            context: self.context.as_ref().map(|c| c.as_bytes().to_vec()),
            associated_data: self.associated_data.as_ref().map(|a| a.as_bytes().to_vec()),
            key_version,
        }
    }
}

#[derive(Args)]
pub(crate) struct EncryptArgs {
    /// TENANT/KEY
    path: String,
    /// Plaintext (default: read stdin).
    plaintext: Option<String>,
    /// JSON Lines, `-` for stdin: one `{"plaintext": BASE64, …}` per line; prints one result or
    /// `{"error": …}` per line, in order, sent in batched requests.
    #[arg(long, value_name = "FILE", conflicts_with = "plaintext")]
    batch: Option<PathBuf>,
    /// Encrypt with this version instead of the latest.
    #[arg(long)]
    key_version: Option<u32>,
    #[command(flatten)]
    options: Options,
}

#[derive(Args)]
pub(crate) struct DecryptArgs {
    /// TENANT/KEY
    path: String,
    /// Ciphertext (default: read stdin).
    ciphertext: Option<String>,
    /// JSON Lines, `-` for stdin: one `{"ciphertext": …}` per line (an encrypt's output);
    /// prints `{"plaintext": BASE64}` or `{"error": …}` per line, in order.
    #[arg(long, value_name = "FILE", conflicts_with = "ciphertext")]
    batch: Option<PathBuf>,
    #[command(flatten)]
    options: Options,
}

#[derive(Args)]
pub(crate) struct RewrapArgs {
    /// TENANT/KEY
    path: String,
    /// Ciphertext (default: read stdin; with --input, the ciphertexts of a whole file).
    ciphertext: Option<String>,
    /// Issue 17: a whole JSON Lines or CSV file (src/cli/rewrap_file.rs), or a PostgreSQL
    /// table's column (src/cli/rewrap_table.rs).
    #[command(flatten)]
    file: super::rewrap_args::FileArgs,
    /// Rewrap to this version instead of the latest.
    #[arg(long)]
    key_version: Option<u32>,
    #[command(flatten)]
    options: Options,
}

#[derive(Args)]
pub(crate) struct DatakeyArgs {
    /// TENANT/KEY
    path: String,
    /// Key length.
    #[arg(long, default_value_t = 256, value_parser = bits)]
    bits: u32,
    /// Return only the wrapped key, not the key itself.
    #[arg(long)]
    wrapped: bool,
    #[command(flatten)]
    options: Options,
}

#[derive(Args)]
pub(crate) struct HmacArgs {
    /// TENANT/KEY
    path: String,
    /// Input (default: read stdin).
    input: Option<String>,
    /// sha2-224, sha2-256 (default), sha2-384 or sha2-512.
    #[arg(long)]
    algorithm: Option<String>,
    #[command(flatten)]
    connection: ConnectionArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn bits(text: &str) -> Result<u32, String> {
    match text {
        "128" | "256" | "512" => Ok(text.parse().expect("digits")),
        _ => Err("use 128, 256 or 512".to_owned()),
    }
}

fn input(argument: Option<String>) -> anyhow::Result<Vec<u8>> {
    match argument {
        Some(text) => Ok(text.into_bytes()),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            Ok(bytes)
        }
    }
}

fn text_input(argument: Option<String>) -> anyhow::Result<String> {
    let bytes = input(argument)?;
    Ok(String::from_utf8(bytes)
        .context("input is not UTF-8")?
        .trim()
        .to_owned())
}

impl Options {
    fn batch_defaults(&self, key_version: Option<u32>) -> batch::Defaults {
        batch::Defaults {
            context: self.context.clone(),
            associated_data: self.associated_data.clone(),
            key_version,
        }
    }
}

pub(crate) async fn encrypt(args: EncryptArgs) -> anyhow::Result<()> {
    let (tenant, key) = tenant_key(&args.path)?;
    if let Some(file) = &args.batch {
        let client = args.options.connection.client()?;
        let defaults = args.options.batch_defaults(args.key_version);
        return batch::run(
            &client,
            tenant,
            key,
            batch::Operation::Encrypt,
            file,
            &defaults,
        )
        .await;
    }
    let plaintext = zeroize::Zeroizing::new(input(args.plaintext)?);
    let sealed = args
        .options
        .connection
        .client()?
        .encrypt(
            tenant,
            key,
            &plaintext,
            &args.options.crypto(args.key_version),
        )
        .await?;
    output::print(args.options.format, &sealed, |s| s.ciphertext.clone())
}

pub(crate) async fn decrypt(args: DecryptArgs) -> anyhow::Result<()> {
    let (tenant, key) = tenant_key(&args.path)?;
    if let Some(file) = &args.batch {
        let client = args.options.connection.client()?;
        let defaults = args.options.batch_defaults(None);
        return batch::run(
            &client,
            tenant,
            key,
            batch::Operation::Decrypt,
            file,
            &defaults,
        )
        .await;
    }
    let ciphertext = text_input(args.ciphertext)?;
    let plaintext = args
        .options
        .connection
        .client()?
        .decrypt(tenant, key, &ciphertext, &args.options.crypto(None))
        .await?;
    match args.options.format {
        Format::Json => output::print(
            Format::Json,
            &json!({ "plaintext": STANDARD.encode(plaintext.as_slice()) }),
            |_| String::new(),
        ),
        Format::Text => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&plaintext)?;
            if std::io::IsTerminal::is_terminal(&stdout) && !plaintext.ends_with(b"\n") {
                stdout.write_all(b"\n")?;
            }
            Ok(())
        }
    }
}

pub(crate) async fn rewrap(args: RewrapArgs) -> anyhow::Result<()> {
    let (tenant, key) = tenant_key(&args.path)?;
    if args.file.source.input.is_some() || args.file.source.pg_table.pg.is_some() {
        let flag = match args.file.source.pg_table.pg {
            Some(_) => "--pg",
            None => "--input",
        };
        if args.ciphertext.is_some() {
            anyhow::bail!("give a ciphertext or {flag}, not both");
        }
        if args.options.context.is_some() || args.options.associated_data.is_some() {
            anyhow::bail!(
                "{flag} rewraps ciphertexts of keys without context or associated data; --context and --associated-data are for one ciphertext"
            );
        }
        if flag == "--pg" && args.key_version.is_some() {
            anyhow::bail!(
                "--pg rewraps to the latest version; --key-version is for one ciphertext"
            );
        }
        let connection = &args.options.connection;
        let summary = match args.file.source.pg_table.pg {
            Some(_) => super::rewrap_table::run(tenant, key, &args.file, connection).await?,
            None => super::rewrap_file::run(tenant, key, &args.file, connection).await?,
        };
        println!("{summary}");
        let errors = summary["errors"].as_u64().unwrap_or(0);
        return match errors {
            0 => Ok(()),
            _ => Err(super::Exit(1).into()),
        };
    }
    let ciphertext = text_input(args.ciphertext)?;
    let sealed = args
        .options
        .connection
        .client()?
        .rewrap(
            tenant,
            key,
            &ciphertext,
            &args.options.crypto(args.key_version),
        )
        .await?;
    output::print(args.options.format, &sealed, |s| s.ciphertext.clone())
}

pub(crate) async fn datakey(args: DatakeyArgs) -> anyhow::Result<()> {
    let (tenant, key) = tenant_key(&args.path)?;
    let data = args
        .options
        .connection
        .client()?
        .datakey(
            tenant,
            key,
            args.bits,
            !args.wrapped,
            &args.options.crypto(None),
        )
        .await?;
    let value = json!({
        "ciphertext": data.ciphertext,
        "key_version": data.key_version,
        "plaintext": data.plaintext.as_ref().map(|p| p.as_str()),
    });
    output::print(args.options.format, &value, |v| {
        match v["plaintext"].as_str() {
            Some(plaintext) => format!(
                "ciphertext: {}\nplaintext: {plaintext}",
                v["ciphertext"].as_str().unwrap_or("")
            ),
            None => v["ciphertext"].as_str().unwrap_or("").to_owned(),
        }
    })
}

pub(crate) async fn hmac(args: HmacArgs) -> anyhow::Result<()> {
    let (tenant, key) = tenant_key(&args.path)?;
    let data = input(args.input)?;
    let token = args
        .connection
        .client()?
        .hmac(tenant, key, &data, args.algorithm.as_deref())
        .await?;
    output::print(args.format, &json!({ "hmac": token }), |v| {
        v["hmac"].as_str().unwrap_or("").to_owned()
    })
}
