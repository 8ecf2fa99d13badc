//! An in-process Tresor server over real mutual TLS on loopback, for the API tests: a dev CA
//! and certificates written to a temporary directory, policy files, a `Config` parsed from TOML
//! text, a real sled store, a vault initialised with a generated custodian and unsealed,
//! tenants, and clients for any principal.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tresor_client::{Client, ClientSettings};
use tresor_core::TenantSpec;
use tresor_core::Vault;
use tresor_crypto::identity::CustodianIdentity;
use tresor_server::config::Config;
use tresor_server::server::{ReloadReport, ServerHandle};
use tresor_server::tls::pki::{ClientCertSpec, DevCa, IssuedCert};
use tresor_wire::custody::InitRequest;

/// The trust domain of every test principal.
pub const TRUST_DOMAIN: &str = "spiffe://test.tresor.local";
/// The principal the default policy makes an operator of everything.
pub const ADMIN: &str = "spiffe://test.tresor.local/admin";
/// The default policy: [`ADMIN`] may do everything.
pub const ADMIN_POLICY: &str = r#"
[[operator]]
principals = ["spiffe://test.tresor.local/admin"]
operations = ["*"]
"#;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// `spiffe://test.tresor.local/<name>`.
pub fn principal(name: &str) -> String {
    format!("{TRUST_DOMAIN}/{name}")
}

/// How far the vault gets before the server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultState {
    /// Never initialised.
    Uninitialized,
    /// Initialised, then left sealed.
    Sealed,
    /// Initialised and unsealed, tenants created.
    Unsealed,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Policy files `(file name, TOML)`; the default is `admin.toml` with [`ADMIN_POLICY`].
    pub policies: Vec<(String, String)>,
    /// Tenants created (level 2) once unsealed.
    pub tenants: Vec<String>,
    /// Lines for the `[limits]` table, e.g. `header_read_timeout = 1`.
    pub limits: Vec<String>,
    /// Whether to configure a CRL (an empty one at first; see [`TestServer::revoke`]).
    pub crl: bool,
    pub state: VaultState,
    /// Lines added to the `[audit]` table (after `path = "audit.log"`), e.g. `checkpoint_every = 5`.
    pub audit: Vec<String>,
    /// A clock the test moves, for the vault (the system clock when `None`).
    pub clock: Option<Arc<tresor_core::ManualClock>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            policies: vec![("admin.toml".into(), ADMIN_POLICY.into())],
            tenants: vec!["dev".into()],
            limits: Vec::new(),
            crl: false,
            state: VaultState::Unsealed,
            audit: Vec::new(),
            clock: None,
        }
    }
}

impl Options {
    /// Adds a policy file.
    pub fn policy(mut self, file: &str, toml: &str) -> Self {
        self.policies.push((file.into(), toml.into()));
        self
    }

    /// Sets the tenants.
    pub fn tenants(mut self, tenants: &[&str]) -> Self {
        self.tenants = tenants.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// Adds a `[limits]` line.
    pub fn limit(mut self, line: &str) -> Self {
        self.limits.push(line.into());
        self
    }

    pub fn state(mut self, state: VaultState) -> Self {
        self.state = state;
        self
    }

    pub fn with_crl(mut self) -> Self {
        self.crl = true;
        self
    }

    /// Adds an `[audit]` line.
    pub fn audit(mut self, line: &str) -> Self {
        self.audit.push(line.into());
        self
    }

    /// Gives the vault a clock the test moves.
    pub fn clock(mut self, clock: Arc<tresor_core::ManualClock>) -> Self {
        self.clock = Some(clock);
        self
    }
}

/// The files of one client identity.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A running server and everything needed to talk to it.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub ca: DevCa,
    pub custodian: CustodianIdentity,
    pub handle: ServerHandle,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The server certificate in use when it started.
    pub server_cert: IssuedCert,
}

impl TestServer {
    /// The default server: admin policy, tenant `dev`, unsealed.
    pub async fn new() -> TestServer {
        TestServer::start(Options::default()).await
    }

    pub async fn start(options: Options) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let ca = DevCa::generate("Tresor API test CA").unwrap();
        write(&path("ca.pem"), ca.cert_pem());
        let server_cert = ca.issue_server(&["localhost", "127.0.0.1"], DAY).unwrap();
        write(&path("server.pem"), &server_cert.cert_pem);
        write(&path("server-key.pem"), &server_cert.key_pem);
        std::fs::create_dir(path("policies")).unwrap();
        for (file, toml) in &options.policies {
            write(&path("policies").join(file), toml);
        }
        let mut text = String::from(
            "listen = \"127.0.0.1:0\"\nenvironment = \"test\"\n\n[tls]\ncert = \"server.pem\"\n\
             key = \"server-key.pem\"\nclient_ca = \"ca.pem\"\n",
        );
        if options.crl {
            write(&path("crl.pem"), &ca.crl(&[], DAY).unwrap().pem);
            text.push_str("crls = [\"crl.pem\"]\n");
        }
        text.push_str("\n[storage]\npath = \"data\"\n\n[policies]\ndir = \"policies\"\n\n[audit]\npath = \"audit.log\"\n");
        for line in &options.audit {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n[limits]\n");
        for line in &options.limits {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n[log]\nlevel = \"warn\"\n");
        let config = Config::parse(&text, dir.path())
            .unwrap_or_else(|e| panic!("test config refused: {e}\n{text}"));
        let vault = match &options.clock {
            None => tresor_server::server::open_vault(&config).unwrap(),
            Some(clock) => {
                let store = tresor_core::SledStore::open(&config.storage.path).unwrap();
                let vault_options = tresor_core::VaultOptions::new(config.environment.clone())
                    .with_clock(clock.clone());
                Vault::open(Arc::new(store), vault_options).unwrap()
            }
        };
        let custodian = CustodianIdentity::generate("api-test-custodian").unwrap();
        if options.state != VaultState::Uninitialized {
            vault
                .init(&InitRequest {
                    custodians: vec![custodian.public().clone()],
                    threshold: 1,
                    four_eyes: None,
                })
                .unwrap();
        }
        let handle = tresor_server::server::start(config, vault).await.unwrap();
        let url = format!("https://127.0.0.1:{}", handle.local_addr().port());
        let server = TestServer {
            dir,
            ca,
            custodian,
            handle,
            url,
            server_cert,
        };
        if options.state == VaultState::Unsealed {
            server.unseal();
            for tenant in &options.tenants {
                server
                    .vault()
                    .create_tenant(tenant, &TenantSpec::default())
                    .unwrap();
            }
        }
        server
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    pub fn vault(&self) -> &Vault {
        self.handle.vault()
    }

    /// Unseals with the custodian's share.
    pub fn unseal(&self) {
        let vault = self.vault();
        let share = vault
            .sealed_share(self.custodian.name())
            .unwrap()
            .open(&self.custodian)
            .unwrap();
        assert!(!vault.unseal(vec![share]).unwrap().sealed);
    }

    /// Issues a client certificate for `principal` from the test CA and writes its files.
    pub fn issue(&self, principal: &str) -> ClientFiles {
        let cert = self.ca.issue_client(principal, DAY).unwrap();
        self.write_identity(principal, &cert)
    }

    /// Writes `cert` as the files of identity `label`.
    pub fn write_identity(&self, label: &str, cert: &IssuedCert) -> ClientFiles {
        write_client_files(self.dir.path(), label, cert)
    }

    /// A Tresor client for `principal` (a fresh certificate from the test CA).
    pub fn client(&self, principal: &str) -> Client {
        let files = self.issue(principal);
        self.client_with(&files)
    }

    /// A Tresor client with the given identity files.
    pub fn client_with(&self, files: &ClientFiles) -> Client {
        Client::new(&ClientSettings {
            addr: self.url.clone(),
            ca_cert: self.path("ca.pem"),
            client_cert: files.cert.clone(),
            client_key: files.key.clone(),
        })
        .unwrap()
    }

    /// A client for [`ADMIN`].
    /// Signs pending approval `id` with the vault's only custodian (threshold 1), so the
    /// dangerous operation runs; returns the outcome.
    pub async fn approve(&self, id: &str) -> tresor_wire::approvals::ApprovalOutcome {
        let admin = self.admin();
        let approval = admin.approval(id).await.unwrap();
        admin
            .approve_with(&approval, &self.custodian)
            .await
            .unwrap()
    }

    /// Signs every pending approval (see [`TestServer::approve`]).
    pub async fn approve_pending(&self) {
        for approval in self.admin().approvals().await.unwrap() {
            self.approve(&approval.id).await;
        }
    }

    pub fn admin(&self) -> Client {
        self.client(ADMIN)
    }

    /// Writes (or replaces) a policy file.
    pub fn write_policy(&self, file: &str, toml: &str) {
        write(&self.path("policies").join(file), toml);
    }

    /// What SIGHUP does.
    pub fn reload(&self) -> ReloadReport {
        self.handle.reload()
    }

    /// Replaces the CRL with one revoking `serials` and reloads the TLS files.
    pub fn revoke(&self, serials: &[&[u8]]) {
        write(
            &self.path("crl.pem"),
            &self.ca.crl(serials, DAY).unwrap().pem,
        );
        self.reload().tls.expect("the new CRL loads");
    }

    /// A rustls client configuration trusting the test CA, presenting `cert` (none: no client
    /// certificate), offering only HTTP/1.1. Built by hand so that expired or foreign
    /// certificates can be presented.
    pub fn tls_config(&self, cert: Option<&IssuedCert>) -> Arc<ClientConfig> {
        tls_config(&self.ca, cert)
    }

    /// A TLS connection presenting `cert`.
    pub async fn connect(&self, cert: Option<&IssuedCert>) -> io::Result<TlsStream<TcpStream>> {
        connect(self.addr(), self.tls_config(cert)).await
    }

    /// A TLS connection as `principal`, with a fresh certificate.
    pub async fn connect_as(&self, principal: &str) -> TlsStream<TcpStream> {
        let cert = self.ca.issue_client(principal, DAY).unwrap();
        self.connect(Some(&cert)).await.unwrap()
    }

    /// An HTTP/1.1 keep-alive connection of our own as `principal` (the driver runs in a task
    /// whose handle is returned, so a test sees when the server closes it).
    pub async fn http1_as(&self, principal: &str) -> Http1 {
        Http1::over(self.connect_as(principal).await).await
    }

    /// Waits (up to 5 s) until the handshake failure counter for `label` reaches `count`.
    pub async fn wait_for_handshake_failures(&self, label: &str, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let failures = self.handle.stats().handshake_failures();
            if failures.get(label).copied().unwrap_or(0) >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} handshake failure(s) labelled {label}, have {failures:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server (sealing the vault).
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// A rustls client configuration trusting `ca`, presenting `cert`, offering HTTP/1.1 only.
pub fn tls_config(ca: &DevCa, cert: Option<&IssuedCert>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(tresor_server::tls::provider())
        .with_protocol_versions(tresor_server::tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some(cert) => builder
            .with_client_auth_cert(
                vec![cert.cert_der.clone()],
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connects to `addr` with `config`, server name `localhost`.
pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Whether the server refused the TLS connection: the handshake fails, or (TLS 1.3, where the
/// client finishes first) the first read fails or sees the connection closed.
pub async fn refused(attempt: io::Result<TlsStream<TcpStream>>) -> bool {
    let mut stream = match attempt {
        Err(_) => return true,
        Ok(stream) => stream,
    };
    let request = b"GET /v1/sys/health HTTP/1.1\r\nhost: localhost\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("the server neither answered nor closed the connection"),
    }
}

/// The peer's end-entity certificate on a TLS connection.
pub fn peer_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Reads from `stream` until the server closes it or `limit` passes; returns what came.
pub async fn read_until_closed(stream: &mut TlsStream<TcpStream>, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server did not close the connection within {limit:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Reads one HTTP/1.1 response (with a Content-Length body) from a raw stream: status and body.
pub async fn read_response(stream: &mut TlsStream<TcpStream>, limit: Duration) -> (u16, Value) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = &data[end + 4..end + 4 + length];
                let value = if body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(body).unwrap()
                };
                return (status, value);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!(
                "connection closed before a full response: {:?}",
                String::from_utf8_lossy(&data)
            ),
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no full response within {limit:?}: {:?}",
                String::from_utf8_lossy(&data)
            ),
        }
    }
}

/// An HTTP/1.1 client connection held by the test.
pub struct Http1 {
    pub sender: SendRequest<Full<Bytes>>,
    pub driver: tokio::task::JoinHandle<Result<(), hyper::Error>>,
    /// The server's certificate on this connection.
    pub peer_certificate: CertificateDer<'static>,
    /// The headers of the last response.
    pub last_headers: hyper::HeaderMap,
}

impl Http1 {
    pub async fn over(stream: TlsStream<TcpStream>) -> Http1 {
        let peer_certificate = peer_certificate(&stream);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        Http1 {
            sender,
            driver,
            peer_certificate,
            last_headers: hyper::HeaderMap::new(),
        }
    }

    /// Sends one request on this connection; status and JSON body (`Null` when empty).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> hyper::Result<(StatusCode, Value)> {
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        self.send_bytes(method, path, bytes).await
    }

    /// Sends one request with a body of raw bytes (no Content-Type, as Vault clients do).
    pub async fn send_bytes(
        &mut self,
        method: &str,
        path: &str,
        bytes: impl Into<Bytes>,
    ) -> hyper::Result<(StatusCode, Value)> {
        self.sender.ready().await?;
        let bytes = bytes.into();
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("/v1/{path}"))
            .header("host", "localhost")
            .body(Full::new(bytes))
            .unwrap();
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        self.last_headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        Ok((status, value))
    }

    /// Waits up to `limit` for the server to close this connection; true if it did.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, &mut self.driver).await.is_ok()
    }
}

/// A client certificate for `principal` valid from `not_before` to `not_after`.
pub fn client_cert_between(
    ca: &DevCa,
    principal: &str,
    not_before: std::time::SystemTime,
    not_after: std::time::SystemTime,
) -> IssuedCert {
    ca.issue_client_with(&ClientCertSpec {
        uris: vec![principal.to_owned()],
        common_name: None,
        not_before,
        not_after,
    })
    .unwrap()
}

/// `LIST`.
/// Writes `cert` into `dir` as the client files of identity `label`.
pub fn write_client_files(dir: &Path, label: &str, cert: &IssuedCert) -> ClientFiles {
    let stem: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let files = ClientFiles {
        cert: dir.join(format!("client-{stem}.pem")),
        key: dir.join(format!("client-{stem}-key.pem")),
    };
    write(&files.cert, &cert.cert_pem);
    write(&files.key, &cert.key_pem);
    files
}

/// One request through `client`: its status and JSON body.
pub async fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    client.raw(method, path, body.as_ref()).await.unwrap()
}

pub fn list() -> Method {
    Method::from_bytes(b"LIST").unwrap()
}

/// The first message of an `{"errors": [...]}` body ("" if none).
pub fn error_message(body: &Value) -> String {
    body["errors"][0].as_str().unwrap_or_default().to_owned()
}

pub fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Standard base64.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
