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
/// The password comes from `password_file`; without one, from `PGPASSWORD` as libpq reads it,
/// so that a tool's password never has to be on its command line.
pub async fn connect(options: &PgOptions) -> Result<tokio_postgres::Client, PgError> {
    let (mut config, tls) = options.driver_config()?;
    if config.get_password().is_none() {
        if let Some(password) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
            config.password(Zeroizing::new(password.into_encoded_bytes()).as_slice());
        }
    }
    let failed = |e: tokio_postgres::Error| PgError::Connect {
        target: options.redacted_url(),
        reason: describe(&e),
    };
    match (&options.ca_file, tls) {
        (Some(ca_file), true) => {
            let (client, connection) = config
                .connect(crate::tls::connector(ca_file)?)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            Ok(client)
        }
        _ => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}
