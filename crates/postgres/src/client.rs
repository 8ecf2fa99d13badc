//! One plain connection for tools that work on an application's own tables (`tresor rewrap
//! --pg`), configured exactly as the store's pool: the same options, password rules and TLS.

use tokio_postgres::NoTls;
use zeroize::Zeroizing;

use crate::options::PgOptions;
use crate::{PgError, describe};

/// Connects with `options` (its `pool_size` and `node_id` serve only their checks and the
/// session's `application_name`) and drives the connection on the current tokio runtime until
/// the client is dropped.
///
/// The password comes from `password_file` or `passfile`; without either, from `PGPASSWORD` as
/// libpq reads it,
/// so that a tool's password never has to be on its command line.
pub async fn connect(options: &PgOptions) -> Result<tokio_postgres::Client, PgError> {
    let (mut config, _) = options.driver_config()?;
    if config.get_password().is_none() {
        if let Some(password) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
            config.password(Zeroizing::new(password.into_encoded_bytes()).as_slice());
        }
    }
    let failed = |e: tokio_postgres::Error| PgError::Connect {
        target: options.redacted_url(),
        reason: describe(&e),
    };
    // The connection's type differs with and without TLS: spawn each where it is made.
    let client = match options.tls_connector()? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(connection);
            client
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(connection);
            client
        }
    };
    Ok(client)
}
