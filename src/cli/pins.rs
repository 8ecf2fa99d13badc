//! `tresor pins app|key|export|verify|manifest|manifest-key …`: pinned-certificate rotation
//! manifests (docs/pinning.md).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use tresor_client::PinActivation;
use tresor_wire::pins::{
    self, AppSpec, ClientState, DeliveredKey, KeyAlgorithm, PinApp, PinChange,
};

use super::connection::ConnectionArgs;
use super::identity::{IdentityArgs, read_public_keys};
use super::key::duration;
use super::output::{self, Format};

#[derive(Args)]
pub(crate) struct Common {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Subcommand)]
pub(crate) enum PinsCommand {
    /// Pinning apps.
    #[command(subcommand)]
    App(AppCommand),
    /// Pinned keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the latest manifest's pins in a platform's syntax.
    Export {
        app: String,
        /// android | trustkit | nspinneddomains | okhttp | json (the signed manifest).
        #[arg(long)]
        format: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Verify a signed manifest as an app does (no server needed).
    Verify {
        /// The manifest file (`-`: stdin).
        manifest: PathBuf,
        /// The app this client is: a manifest for any other app is refused, even when validly
        /// signed.
        #[arg(long)]
        app: String,
        /// The manifest key built into the app (PEM public key or base64).
        #[arg(long, value_name = "KEY.pub")]
        trust: PathBuf,
        /// The last accepted manifest's state: checked for rollback, then updated.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Fetch a signed manifest (the latest, or VERSION).
    Manifest {
        app: String,
        /// A manifest version (default: the latest).
        #[arg(value_name = "VERSION")]
        manifest_version: Option<u64>,
        /// Write it here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Sign a new manifest version now (the server also does it before `expires`).
    Reissue {
        app: String,
        #[command(flatten)]
        common: Common,
    },
    /// The manifest signing key.
    #[command(subcommand, name = "manifest-key")]
    ManifestKey(ManifestKeyCommand),
    /// Fetch and verify the hash-chained log of every signed manifest.
    Log {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub(crate) enum AppCommand {
    /// Create an app.
    Create {
        app: String,
        /// HOST[:none|one|all] (subdomain scope; default none). Repeat for each host.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// How long the slowest app install takes to update, e.g. 90d.
        #[arg(long, value_parser = duration)]
        max_update_lag: u64,
        /// How long a manifest stays fresh, e.g. 14d.
        #[arg(long, value_parser = duration)]
        expires: u64,
        /// How long a client may keep enforcing the last good manifest, e.g. 180d.
        #[arg(long, value_parser = duration)]
        enforce_until: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Describe an app and its keys.
    Show {
        app: String,
        #[command(flatten)]
        common: Common,
    },
    /// List apps.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Make a key pair in the vault and stage its pin.
    Generate {
        app: String,
        #[arg(long, default_value = "ecdsa-p256", value_parser = ["ecdsa-p256", "ed25519", "rsa-2048"])]
        algorithm: String,
        #[command(flatten)]
        common: Common,
    },
    /// Stage the pin of a key held elsewhere.
    Import {
        app: String,
        /// A certificate (PEM).
        #[arg(long, value_name = "FILE", group = "source", required_unless_present_any = ["csr", "public_key"])]
        cert: Option<PathBuf>,
        /// A CSR (PEM); its signature must verify.
        #[arg(long, value_name = "FILE", group = "source")]
        csr: Option<PathBuf>,
        /// A public key (PEM SubjectPublicKeyInfo).
        #[arg(long, value_name = "FILE", group = "source")]
        public_key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Make a staged key active (after max_update_lag; earlier with --override and approval).
    Activate {
        app: String,
        kid: String,
        /// Ask the custodians to approve activation before max_update_lag has passed.
        #[arg(long = "override")]
        override_lag: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Retire a key: active → retiring; retiring or staged → retired (private key destroyed).
    Retire {
        app: String,
        kid: String,
        #[command(flatten)]
        common: Common,
    },
    /// Mark a key compromised: promote the published backup, stage a new one.
    Compromise {
        app: String,
        kid: String,
        #[command(flatten)]
        common: Common,
    },
    /// A PKCS#10 CSR signed with the vault-held key.
    Csr {
        app: String,
        kid: String,
        /// Subject, e.g. "CN=api.example.com,O=Example".
        #[arg(long)]
        subject: String,
        /// A subjectAltName DNS name (repeat; default: the app's hosts, with `*.host` where
        /// the pins cover subdomains).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// The private key sealed to a TLS terminator's identity (`tresor custodian keygen`).
    Deliver {
        app: String,
        kid: String,
        /// The terminator's public identity.
        #[arg(long, value_name = "FILE.pub")]
        to: PathBuf,
        /// Write the sealed key here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Open a delivered key with the terminator's identity; prints the PEM private key.
    Open {
        /// The delivered key file (`-` or absent: stdin).
        delivered: Option<PathBuf>,
        #[command(flatten)]
        identity: IdentityArgs,
        /// Write the PEM key here (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Subcommand)]
pub(crate) enum ManifestKeyCommand {
    /// Show the current key and its chain; --out writes the PEM public key to build into apps.
    Show {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Replace the key with a new one signed by the current one; re-signs every manifest.
    Rotate {
        #[command(flatten)]
        common: Common,
    },
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buffer = Vec::new();
        std::io::stdin().read_to_end(&mut buffer)?;
        return Ok(buffer);
    }
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> anyhow::Result<()> {
    if secret {
        return super::write_private(path, contents);
    }
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn show_app(app: &PinApp) -> String {
    let mut out = format!(
        "app: {}\nhosts: {}\nmax_update_lag: {}\nexpires: {}\nenforce_until: {}\nmanifest version: {}",
        app.name,
        app.spec
            .hosts
            .iter()
            .map(|h| format!("{}:{}", h.name, h.subdomains.name()))
            .collect::<Vec<_>>()
            .join(", "),
        tresor_wire::duration::format_seconds(app.spec.max_update_lag),
        tresor_wire::duration::format_seconds(app.spec.expires),
        tresor_wire::duration::format_seconds(app.spec.enforce_until),
        app.manifest_version
            .map_or("none yet (needs 2 pins)".to_owned(), |v| v.to_string()),
    );
    for key in &app.keys {
        out.push_str(&format!(
            "\n{}  {:<11} {:<10} {}  {}",
            key.kid,
            key.state.name(),
            key.algorithm,
            key.pin,
            key.activatable_at
                .map_or(String::new(), |t| format!("activatable at {t}"))
        ));
    }
    out
}

fn show_change(change: &PinChange) -> String {
    let mut lines = Vec::new();
    for key in change.key.iter().chain(&change.also) {
        lines.push(format!(
            "{} {} {} {}",
            key.kid,
            key.state.name(),
            key.algorithm,
            key.pin
        ));
    }
    lines.push(match change.manifest_version {
        Some(v) => format!("manifest version {v} signed"),
        None => "no manifest yet: an app's first manifest needs 2 pins, one of them staged".into(),
    });
    lines.join("\n")
}

pub(crate) async fn run(command: PinsCommand) -> anyhow::Result<()> {
    match command {
        PinsCommand::App(command) => app(command).await,
        PinsCommand::Key(command) => key(command).await,
        PinsCommand::Export {
            app,
            format,
            connection,
        } => {
            let text = connection.client()?.pins_export(&app, &format).await?;
            print!("{text}");
            Ok(())
        }
        PinsCommand::Verify {
            manifest,
            app,
            trust,
            state,
            format,
        } => verify(&manifest, &app, &trust, state.as_deref(), format),
        PinsCommand::Manifest {
            app,
            manifest_version,
            out,
            common,
        } => {
            let bytes = common
                .connection
                .client()?
                .pins_manifest(&app, manifest_version)
                .await?;
            match out {
                Some(path) => {
                    write_file(&path, &bytes, false)?;
                    output::print(
                        common.format,
                        &json!({ "written": path.display().to_string() }),
                        |_| format!("wrote {}", path.display()),
                    )
                }
                None => output::line(&String::from_utf8_lossy(&bytes)),
            }
        }
        PinsCommand::Reissue { app, common } => {
            let version = common.connection.client()?.pins_reissue(&app).await?;
            output::print(
                common.format,
                &json!({ "manifest_version": version }),
                |_| format!("manifest version {version} signed"),
            )
        }
        PinsCommand::Log { common } => {
            let entries = common.connection.client()?.pins_log().await?;
            output::print(common.format, &entries, |entries| {
                let mut lines: Vec<String> = entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{:>6} {} v{} {} issued {}",
                            e.seq, e.app, e.version, e.manifest_hash, e.issued_at
                        )
                    })
                    .collect();
                lines.push(format!(
                    "log verified: {} entries, head {}",
                    entries.len(),
                    entries.last().map_or("none", |e| e.hash.as_str())
                ));
                lines.join("\n")
            })
        }
        PinsCommand::ManifestKey(ManifestKeyCommand::Show { out, common }) => {
            let info = common.connection.client()?.pins_manifest_key().await?;
            if let Some(path) = &out {
                write_file(path, info.public_key_pem.as_bytes(), false)?;
            }
            output::print(common.format, &info, |i| {
                format!(
                    "manifest key {} ({} in the chain)\n{}",
                    i.keyid,
                    i.key_chain.len(),
                    i.public_key_pem.trim_end()
                )
            })
        }
        PinsCommand::ManifestKey(ManifestKeyCommand::Rotate { common }) => {
            let info = common
                .connection
                .client()?
                .pins_rotate_manifest_key()
                .await?;
            output::print(common.format, &info, |i| {
                format!(
                    "manifest key is now {} ({} in the chain)",
                    i.keyid,
                    i.key_chain.len()
                )
            })
        }
    }
}

async fn app(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Create {
            app,
            hosts,
            max_update_lag,
            expires,
            enforce_until,
            common,
        } => {
            let hosts = hosts
                .iter()
                .map(|h| pins::parse_host(h))
                .collect::<Result<Vec<_>, _>>()?;
            let spec = AppSpec {
                hosts,
                max_update_lag,
                expires,
                enforce_until,
            };
            let created = common
                .connection
                .client()?
                .pins_create_app(&app, &spec)
                .await?;
            output::print(common.format, &created, show_app)
        }
        AppCommand::Show { app, common } => {
            let found = common.connection.client()?.pins_app(&app).await?;
            output::print(common.format, &found, show_app)
        }
        AppCommand::List { common } => {
            let apps = common.connection.client()?.pins_list_apps().await?;
            output::print(common.format, &apps, |a| a.join("\n"))
        }
    }
}

async fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Generate {
            app,
            algorithm,
            common,
        } => {
            let algorithm: KeyAlgorithm = algorithm.parse()?;
            let change = common
                .connection
                .client()?
                .pins_generate_key(&app, algorithm)
                .await?;
            output::print(common.format, &change, show_change)
        }
        KeyCommand::Import {
            app,
            cert,
            csr,
            public_key,
            common,
        } => {
            let (kind, path) = match (cert, csr, public_key) {
                (Some(p), None, None) => ("certificate", p),
                (None, Some(p), None) => ("csr", p),
                (None, None, Some(p)) => ("public-key", p),
                _ => bail!("give exactly one of --cert, --csr, --public-key"),
            };
            let pem = String::from_utf8(read_input(&path)?)
                .with_context(|| format!("{} is not PEM text", path.display()))?;
            let change = common
                .connection
                .client()?
                .pins_import_key(&app, kind, &pem)
                .await?;
            output::print(common.format, &change, show_change)
        }
        KeyCommand::Activate {
            app,
            kid,
            override_lag,
            common,
        } => {
            match common
                .connection
                .client()?
                .pins_activate(&app, &kid, override_lag)
                .await?
            {
                PinActivation::Done(change) => {
                    output::print(common.format, change.as_ref(), show_change)
                }
                PinActivation::PendingApproval(approval) => {
                    output::print(common.format, &approval, |a| {
                        format!(
                            "early activation needs approval by {} custodian(s): tresor approval approve {} --identity CUSTODIAN.key",
                            a.required, a.id
                        )
                    })
                }
            }
        }
        KeyCommand::Retire { app, kid, common } => {
            let change = common.connection.client()?.pins_retire(&app, &kid).await?;
            output::print(common.format, &change, show_change)
        }
        KeyCommand::Compromise { app, kid, common } => {
            let change = common
                .connection
                .client()?
                .pins_compromise(&app, &kid)
                .await?;
            output::print(common.format, &change, show_change)
        }
        KeyCommand::Csr {
            app,
            kid,
            subject,
            dns,
            common,
        } => {
            let csr = common
                .connection
                .client()?
                .pins_csr(&app, &kid, &subject, &dns)
                .await?;
            output::print(common.format, &json!({ "csr": csr }), |_| {
                csr.trim_end().to_owned()
            })
        }
        KeyCommand::Deliver {
            app,
            kid,
            to,
            out,
            common,
        } => {
            let recipient = read_public_keys(std::slice::from_ref(&to))?
                .pop()
                .expect("one key read");
            let delivered = common
                .connection
                .client()?
                .pins_deliver(&app, &kid, &recipient)
                .await?;
            let text = serde_json::to_string_pretty(&delivered)? + "\n";
            match out {
                Some(path) => {
                    write_file(&path, text.as_bytes(), false)?;
                    output::print(
                        common.format,
                        &json!({ "written": path.display().to_string() }),
                        |_| {
                            format!(
                                "key {kid} sealed to {} written to {}",
                                delivered.recipient,
                                path.display()
                            )
                        },
                    )
                }
                None => output::line(text.trim_end()),
            }
        }
        KeyCommand::Open {
            delivered,
            identity,
            out,
            format,
        } => {
            let path = delivered.unwrap_or_else(|| PathBuf::from("-"));
            let delivered: DeliveredKey = serde_json::from_slice(&read_input(&path)?)
                .with_context(|| format!("{} is not a delivered key", path.display()))?;
            let identity = identity.open()?;
            let pem = pins::open_delivered_key(&identity, &delivered)?;
            match out {
                Some(out) => {
                    write_file(&out, pem.as_bytes(), true)?;
                    output::print(
                        format,
                        &json!({ "written": out.display().to_string(), "kid": delivered.kid, "pin": delivered.pin }),
                        |_| {
                            format!(
                                "wrote the private key of {} to {}",
                                delivered.kid,
                                out.display()
                            )
                        },
                    )
                }
                None => match format {
                    Format::Text => {
                        print!("{}", pem.as_str());
                        Ok(())
                    }
                    Format::Json => output::line(&serde_json::to_string_pretty(
                        &json!({ "kid": delivered.kid, "pin": delivered.pin, "pem": pem.as_str() }),
                    )?),
                },
            }
        }
    }
}

fn verify(
    manifest: &Path,
    app: &str,
    trust: &Path,
    state_path: Option<&Path>,
    format: Format,
) -> anyhow::Result<()> {
    let bytes = read_input(manifest)?;
    let trust_key = pins::parse_manifest_key(
        &fs::read(trust).with_context(|| format!("reading {}", trust.display()))?,
    )
    .with_context(|| format!("{}", trust.display()))?;
    let state: Option<ClientState> = match state_path {
        Some(path) if path.exists() => Some(
            serde_json::from_slice(
                &fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{} is not a manifest state file", path.display()))?,
        ),
        _ => None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let verified = pins::verify(&bytes, &trust_key, app, state.as_ref(), now)?;
    if let Some(path) = state_path {
        write_file(
            path,
            (serde_json::to_string_pretty(&verified.state)? + "\n").as_bytes(),
            false,
        )?;
    }
    let m = &verified.manifest;
    output::print(
        format,
        &json!({
            "valid": true,
            "app": m.app,
            "version": m.version,
            "issued_at": m.issued_at,
            "expires": m.expires,
            "enforce_until": m.enforce_until,
            "hash": verified.hash,
            "signed_by": verified.signed_by,
            "pins": m.pins,
        }),
        |_| {
            format!(
                "valid: app {} version {} ({}), signed by {}, expires {}, {} pins",
                m.app,
                m.version,
                verified.hash,
                verified.signed_by,
                m.expires,
                m.pins.len()
            )
        },
    )
}
