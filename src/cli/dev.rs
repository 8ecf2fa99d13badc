//! `tresor dev`: a complete local vault in one command, for newcomers and for tests. It writes
//! into DIR a dev CA, a server certificate for localhost, an admin client certificate, a dev
//! custodian identity, `tresor.toml` and an admin policy; initialises with that custodian,
//! unseals, creates tenant `dev`, prints the environment to use it, and serves until stopped.
//! Run it again with the same DIR to get the same vault back.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tresor_client::{Client, ClientSettings};
use tresor_crypto::identity::CustodianIdentity;
use tresor_server::config::Config;
use tresor_server::server;
use tresor_server::tls::pki::DevCa;

/// The dev custodian's passphrase. Printed at start: a dev vault holds nothing secret.
const DEV_PASSPHRASE: &str = "tresor-dev";
const DEV_PRINCIPAL: &str = "spiffe://dev.tresor.local/admin";
const ADMIN_POLICY: &str = include_str!("../../policies/admin.toml");
const VALIDITY: Duration = Duration::from_secs(365 * 86_400);

#[derive(Args)]
pub(crate) struct DevArgs {
    /// Directory for certificates, configuration and data (default: a new temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8200; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("tresor-dev-{}", std::process::id())),
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("{}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let config_path = dir.join("tresor.toml");
    if !config_path.exists() {
        write_dev_files(&dir).context("writing the dev vault's files")?;
    }
    let mut config = Config::load(&config_path)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    super::output::init_logging(&config.log.level, config.log.format);
    let handle = server::open_and_start(config).await?;
    let vault = handle.vault().clone();

    let identity_path = dir.join("custodian.key");
    let identity_text = fs::read_to_string(&identity_path)
        .with_context(|| format!("{}", identity_path.display()))?;
    let identity =
        CustodianIdentity::from_encrypted_json(&identity_text, DEV_PASSPHRASE.as_bytes())
            .with_context(|| format!("{}", identity_path.display()))?;
    // The dev vault goes through the same API path a custodian uses: init over HTTP, then
    // unseal with the identity opened here and the share sealed to the vault's unseal key.
    let address = handle.local_addr();
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        address.ip().to_string()
    };
    let url = format!("https://{host}:{}", address.port());
    let client = Client::new(&ClientSettings {
        addr: url.clone(),
        ca_cert: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client-key.pem"),
    })?;
    if !vault.seal_status()?.initialized {
        client
            .init(&[identity.public().clone()], 1, None)
            .await
            .context("initialising the dev vault")?;
    }
    // The dev custodian trusts the node this command runs (its identity key is in DIR).
    let node = tresor_server::node::load_or_create(&dir.join("node-identity.key"))?;
    let fingerprint = node.verifying_key().fingerprint();
    super::identity::pin_node(&dir.join("custodian.nodes"), &fingerprint, "tresor dev")?;
    client
        .unseal_with(
            &identity,
            &super::identity::read_pins(&dir.join("custodian.nodes"))?,
        )
        .await
        .context("unsealing the dev vault")?;
    if client.tenant("dev").await.is_err() {
        client
            .create_tenant("dev", 2, &[])
            .await
            .context("creating tenant `dev`")?;
    }

    let file = |name: &str| dir.join(name).display().to_string();
    let mut out = String::new();
    writeln!(
        out,
        "Tresor dev vault at {url}: environment `dev`, tenant `dev`, data in {}",
        dir.display()
    )?;
    writeln!(
        out,
        "Dev custodian: {} (passphrase: {DEV_PASSPHRASE})",
        file("custodian.key")
    )?;
    writeln!(
        out,
        "Audit log: {} (check it: tresor audit verify {} --key {})",
        file("audit.log"),
        file("audit.log"),
        file("audit.pub")
    )?;
    writeln!(out, "Admin client certificate principal: {DEV_PRINCIPAL}")?;
    writeln!(out, "Use it from another shell:\n")?;
    for (name, value) in [
        ("ADDR", url.clone()),
        ("CACERT", file("ca.pem")),
        ("CLIENT_CERT", file("client.pem")),
        ("CLIENT_KEY", file("client-key.pem")),
    ] {
        writeln!(out, "export TRESOR_{name}={value}")?;
    }
    for (name, value) in [
        ("ADDR", url.clone()),
        ("CACERT", file("ca.pem")),
        ("CLIENT_CERT", file("client.pem")),
        ("CLIENT_KEY", file("client-key.pem")),
    ] {
        writeln!(out, "export VAULT_{name}={value}")?;
    }
    writeln!(
        out,
        "\nStop with ctrl-c; run `tresor dev --dir {}` to start it again.",
        dir.display()
    )?;
    // The banner is best effort: a caller that reads only the first lines (`| head`) or closes
    // the pipe must not take the running vault down with it.
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        tracing::warn!("could not print the dev banner: stdout is closed");
    }
    drop(stdout);

    // Like `tresor server`: rotate due keys and re-issue pin manifests before they expire.
    let background = handle.spawn_background();
    server::wait_for_signals(&handle).await;
    background.abort();
    handle.shutdown().await;
    Ok(())
}

fn write_dev_files(dir: &Path) -> anyhow::Result<()> {
    let ca = DevCa::generate("Tresor dev CA")?;
    write_public(&dir.join("ca.pem"), ca.cert_pem().as_bytes())?;
    super::write_private(&dir.join("ca-key.pem"), ca.key_pem().as_bytes())?;
    let server = ca.issue_server(&["localhost", "127.0.0.1", "::1"], VALIDITY)?;
    write_public(&dir.join("server.pem"), server.cert_pem.as_bytes())?;
    super::write_private(&dir.join("server-key.pem"), server.key_pem.as_bytes())?;
    let client = ca.issue_client(DEV_PRINCIPAL, VALIDITY)?;
    write_public(&dir.join("client.pem"), client.cert_pem.as_bytes())?;
    super::write_private(&dir.join("client-key.pem"), client.key_pem.as_bytes())?;

    let custodian = CustodianIdentity::generate_for("dev-custodian", DEV_PRINCIPAL)?;
    super::write_private(
        &dir.join("custodian.key"),
        custodian
            .to_encrypted_json(DEV_PASSPHRASE.as_bytes())?
            .as_bytes(),
    )?;
    write_public(
        &dir.join("custodian.pub"),
        custodian.public().to_json().as_bytes(),
    )?;

    fs::create_dir_all(dir.join("policies"))?;
    write_public(&dir.join("policies/admin.toml"), ADMIN_POLICY.as_bytes())?;
    let config = "# Written by `tresor dev`: a local development vault. Not for production.\n\
                  listen = \"127.0.0.1:8200\"\n\
                  environment = \"dev\"\n\n\
                  [tls]\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"ca.pem\"\n\n\
                  [storage]\npath = \"data\"\n\n\
                  [policies]\ndir = \"policies\"\n\n\
                  [audit]\npath = \"audit.log\"\n";
    // Written last: its presence marks a complete set of files.
    write_public(&dir.join("tresor.toml"), config.as_bytes())?;
    Ok(())
}

fn write_public(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
