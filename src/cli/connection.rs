//! How client commands find and authenticate to the server: flags or `TRESOR_*` variables.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tresor_client::{Client, ClientSettings};

#[derive(Args, Debug, Clone)]
pub(crate) struct ConnectionArgs {
    /// Server address.
    #[arg(long, env = "TRESOR_ADDR", default_value = "https://127.0.0.1:8200")]
    pub(crate) addr: String,
    /// CA certificate of the server (PEM).
    #[arg(long, env = "TRESOR_CACERT", value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, env = "TRESOR_CLIENT_CERT", value_name = "FILE")]
    pub(crate) client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, env = "TRESOR_CLIENT_KEY", value_name = "FILE")]
    pub(crate) client_key: Option<PathBuf>,
    /// Seconds a call may take before it fails (connection and answer included).
    #[arg(long, env = "TRESOR_CLIENT_TIMEOUT", value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) client_timeout: u64,
}

impl ConnectionArgs {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.settings()?)?
            .with_timeout(std::time::Duration::from_secs(self.client_timeout)))
    }

    /// The address and files, each from its flag or variable.
    pub(crate) fn settings(&self) -> anyhow::Result<ClientSettings> {
        let need = |value: &Option<PathBuf>, flag: &str, var: &str| {
            value.clone().with_context(|| {
                format!("no {flag} given (or set {var}); `tresor dev` prints the values to use")
            })
        };
        let settings = ClientSettings {
            addr: self.addr.clone(),
            ca_cert: need(&self.cacert, "--cacert", "TRESOR_CACERT")?,
            client_cert: need(&self.client_cert, "--client-cert", "TRESOR_CLIENT_CERT")?,
            client_key: need(&self.client_key, "--client-key", "TRESOR_CLIENT_KEY")?,
        };
        super::hints::note_client_cert(&settings.client_cert);
        Ok(settings)
    }
}

/// Splits `TENANT/KEY`.
pub(crate) fn tenant_key(path: &str) -> anyhow::Result<(&str, &str)> {
    match path.split_once('/') {
        Some((tenant, key)) if !tenant.is_empty() && !key.is_empty() && !key.contains('/') => {
            Ok((tenant, key))
        }
        _ => anyhow::bail!("`{path}` is not of the form TENANT/KEY"),
    }
}
