//! Real mutual-TLS handshakes over loopback (tokio + tokio-rustls): who gets in, who does not
//! and why, and what a reload changes.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tresor_client::tls::{client_config, load_client_config};
use tresor_server::tls::pki::{ClientCertSpec, DevCa, IssuedCert};
use tresor_server::tls::{
    self, ServerTls, ServerTlsFiles, TlsError, classify_handshake_error, peer_principal,
};

const DAY: Duration = Duration::from_secs(24 * 3600);
const PAYMENTS: &str = "spiffe://test.tresor.local/svc/payments";

/// What the server made of one connection: the principal (SPIFFE only, and with the CN
/// fallback), or the label of the failed handshake.
type Outcome = Result<(Result<String, String>, Result<String, String>), &'static str>;

struct Pki {
    dir: tempfile::TempDir,
    ca: DevCa,
    server: IssuedCert,
    files: ServerTlsFiles,
}

impl Pki {
    /// A CA, a server certificate for localhost and the server's files; with `crl`, an empty
    /// CRL file too.
    fn new(crl: bool) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("Tresor test CA").unwrap();
        let server = ca.issue_server(&["localhost", "127.0.0.1"], DAY).unwrap();
        let path = |name: &str| dir.path().join(name);
        write(&path("ca.pem"), ca.cert_pem());
        write(&path("server.pem"), &server.cert_pem);
        write(&path("server-key.pem"), &server.key_pem);
        let mut crls = Vec::new();
        if crl {
            write(&path("crl.pem"), &ca.crl(&[], DAY).unwrap().pem);
            crls.push(path("crl.pem"));
        }
        let files = ServerTlsFiles {
            cert: path("server.pem"),
            key: path("server-key.pem"),
            client_ca: path("ca.pem"),
            crls,
        };
        Pki {
            dir,
            ca,
            server,
            files,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn client(&self, uri: &str) -> (IssuedCert, Arc<ClientConfig>) {
        let cert = self.ca.issue_client(uri, DAY).unwrap();
        let config = client_config(
            self.ca.cert_pem().as_bytes(),
            cert.cert_pem.as_bytes(),
            cert.key_pem.as_bytes(),
        )
        .unwrap();
        (cert, Arc::new(config))
    }
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents).unwrap();
}

/// A client configuration built by hand, for certificates `client_config` would refuse.
fn raw_client(
    ca: &DevCa,
    cert: Option<&IssuedCert>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(versions)
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
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

struct Server {
    addr: SocketAddr,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
}

impl Server {
    /// Accepts connections with the configuration current at each accept; reports each
    /// handshake; then echoes bytes until the client closes.
    async fn start(tls: Arc<ServerTls>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, outcomes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = tls.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    let mut stream = match accepted {
                        Err(_elapsed) => {
                            let _ = tx.send(Err("timeout"));
                            return;
                        }
                        Ok(Err(e)) => {
                            let _ = tx.send(Err(classify_handshake_error(&e)));
                            return;
                        }
                        Ok(Ok(stream)) => stream,
                    };
                    let conn = stream.get_ref().1;
                    let strict = peer_principal(conn, false).map_err(|e| e.to_string());
                    let lenient = peer_principal(conn, true).map_err(|e| e.to_string());
                    let _ = tx.send(Ok((strict, lenient)));
                    let mut buf = [0u8; 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        Server { addr, outcomes }
    }

    async fn outcome(&mut self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(10), self.outcomes.recv())
            .await
            .expect("the server reports every connection")
            .unwrap()
    }

    /// The SPIFFE principal the server saw, or the failure label.
    async fn principal(&mut self) -> Result<String, &'static str> {
        self.outcome().await.map(|(strict, _)| strict.unwrap())
    }
}

/// Connects and proves the connection works with one echo. (With TLS 1.3 the client finishes
/// its handshake before the server has judged its certificate; the server's verdict arrives
/// with the first read.)
async fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    echo(&mut stream, b"ping").await?;
    Ok(stream)
}

async fn echo(stream: &mut TlsStream<TcpStream>, message: &[u8]) -> io::Result<()> {
    stream.write_all(message).await?;
    stream.flush().await?;
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    assert_eq!(back, message);
    Ok(())
}

fn served_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn start(pki: &Pki) -> (Arc<ServerTls>, Server) {
    let tls = Arc::new(ServerTls::load(&pki.files).unwrap());
    let server = Server::start(tls.clone()).await;
    (tls, server)
}

#[tokio::test]
async fn a_client_certificate_from_the_ca_gets_in_as_its_spiffe_id() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    let (_, config) = pki.client(PAYMENTS);
    let stream = connect(&config, server.addr).await.unwrap();
    assert_eq!(server.principal().await.unwrap(), PAYMENTS);

    let conn = stream.get_ref().1;
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(served_certificate(&stream), pki.server.cert_der);
}

#[tokio::test]
async fn every_connection_is_a_full_handshake_with_its_certificate_verified() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    for versions in [tls::PROTOCOL_VERSIONS, &[&rustls::version::TLS12]] {
        let cert = pki.ca.issue_client(PAYMENTS, DAY).unwrap();
        let config = raw_client(&pki.ca, Some(&cert), versions);
        for _ in 0..3 {
            let stream = connect(&config, server.addr).await.unwrap();
            server.principal().await.unwrap();
            assert_eq!(
                stream.get_ref().1.handshake_kind(),
                Some(HandshakeKind::Full)
            );
        }
    }
}

#[tokio::test]
async fn a_cn_only_certificate_gets_in_only_where_the_cn_fallback_is_allowed() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    let cert = pki
        .ca
        .issue_client_with(&ClientCertSpec::common_name("batch-job", DAY))
        .unwrap();
    let config = Arc::new(
        client_config(
            pki.ca.cert_pem().as_bytes(),
            cert.cert_pem.as_bytes(),
            cert.key_pem.as_bytes(),
        )
        .unwrap(),
    );
    connect(&config, server.addr).await.unwrap();
    let (strict, lenient) = server.outcome().await.unwrap();
    assert!(strict.unwrap_err().contains("no SPIFFE URI SAN"));
    assert_eq!(lenient.unwrap(), "batch-job");
}

#[tokio::test]
async fn without_a_client_certificate_the_handshake_fails() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    let config = raw_client(&pki.ca, None, tls::PROTOCOL_VERSIONS);
    assert!(connect(&config, server.addr).await.is_err());
    assert_eq!(server.principal().await, Err("no_client_certificate"));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    let other = DevCa::generate("Some other CA").unwrap();
    let cert = other.issue_client(PAYMENTS, DAY).unwrap();
    // The client trusts our server; only its own certificate is foreign.
    let config = Arc::new(
        client_config(
            pki.ca.cert_pem().as_bytes(),
            cert.cert_pem.as_bytes(),
            cert.key_pem.as_bytes(),
        )
        .unwrap(),
    );
    assert!(connect(&config, server.addr).await.is_err());
    assert_eq!(server.principal().await, Err("unknown_ca"));
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    let now = SystemTime::now();
    let cert = pki
        .ca
        .issue_client_with(&ClientCertSpec {
            not_before: now - 3 * DAY,
            not_after: now - DAY,
            ..ClientCertSpec::spiffe(PAYMENTS, DAY)
        })
        .unwrap();

    // The client library says so before connecting…
    let err = client_config(
        pki.ca.cert_pem().as_bytes(),
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(err, TlsError::CertificateExpired { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("client certificate: certificate expired at "),
        "{err}"
    );

    // …and the server refuses it from a client that tries anyway.
    let config = raw_client(&pki.ca, Some(&cert), tls::PROTOCOL_VERSIONS);
    assert!(connect(&config, server.addr).await.is_err());
    assert_eq!(server.principal().await, Err("expired"));
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_and_crls_are_reread_on_reload() {
    let pki = Pki::new(true);
    let (tls, mut server) = start(&pki).await;
    let (revoked, revoked_config) = pki.client("spiffe://test.tresor.local/svc/leaked");
    let (_, fine_config) = pki.client(PAYMENTS);

    // The CRL in force revokes nothing yet.
    connect(&revoked_config, server.addr).await.unwrap();
    assert_eq!(
        server.principal().await.unwrap(),
        "spiffe://test.tresor.local/svc/leaked"
    );

    // A new CRL, in DER this time, revokes one certificate.
    let crl = pki.ca.crl(&[&revoked.serial], DAY).unwrap();
    write(&pki.path("crl.pem"), &crl.der);
    tls.reload().unwrap();
    assert!(connect(&revoked_config, server.addr).await.is_err());
    assert_eq!(server.principal().await, Err("revoked"));
    connect(&fine_config, server.addr).await.unwrap();
    assert_eq!(server.principal().await.unwrap(), PAYMENTS);

    // Loaded from scratch (PEM), the CRL is honoured just the same.
    write(&pki.path("crl.pem"), &crl.pem);
    let (_tls, mut fresh) = start(&pki).await;
    assert!(connect(&revoked_config, fresh.addr).await.is_err());
    assert_eq!(fresh.principal().await, Err("revoked"));
}

#[tokio::test]
async fn a_crl_from_another_ca_leaves_revocation_unknown_and_fails_closed() {
    let pki = Pki::new(true);
    let other = DevCa::generate("Some other CA").unwrap();
    write(&pki.path("crl.pem"), other.crl(&[], DAY).unwrap().pem);
    let (_tls, mut server) = start(&pki).await;
    let (_, config) = pki.client(PAYMENTS);
    assert!(connect(&config, server.addr).await.is_err());
    assert_eq!(server.principal().await, Err("revocation_unknown"));
}

#[tokio::test]
async fn a_tls12_client_negotiates_an_ecdhe_aead_suite() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    let cert = pki.ca.issue_client(PAYMENTS, DAY).unwrap();
    let config = raw_client(&pki.ca, Some(&cert), &[&rustls::version::TLS12]);
    let stream = connect(&config, server.addr).await.unwrap();
    assert_eq!(server.principal().await.unwrap(), PAYMENTS);
    let conn = stream.get_ref().1;
    assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
    assert!(suite.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{suite}");
    assert!(
        suite.contains("_GCM_") || suite.contains("CHACHA20_POLY1305"),
        "{suite}"
    );
}

#[tokio::test]
async fn other_refusals_are_counted_by_reason() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;

    // A server certificate (serverAuth only) presented as a client certificate.
    let config = raw_client(&pki.ca, Some(&pki.server), tls::PROTOCOL_VERSIONS);
    assert!(connect(&config, server.addr).await.is_err());
    assert_eq!(server.principal().await, Err("bad_certificate"));

    // A certificate that is not valid yet.
    let now = SystemTime::now();
    let early = pki
        .ca
        .issue_client_with(&ClientCertSpec {
            not_before: now + DAY,
            not_after: now + 2 * DAY,
            ..ClientCertSpec::spiffe(PAYMENTS, DAY)
        })
        .unwrap();
    let config = raw_client(&pki.ca, Some(&early), tls::PROTOCOL_VERSIONS);
    assert!(connect(&config, server.addr).await.is_err());
    assert_eq!(server.principal().await, Err("not_yet_valid"));

    // Plain HTTP on the TLS port.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(server.principal().await, Err("protocol"));

    // A client that gives up half-way.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&legacy_client_hello([0x03, 0x03])[..20])
        .await
        .unwrap();
    drop(tcp);
    assert_eq!(server.principal().await, Err("closed"));
}

/// A minimal ClientHello as a TLS 1.0/1.1 client sends it: no supported_versions extension,
/// CBC suites only.
fn legacy_client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = version.to_vec();
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // empty session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // compression: null only
    let mut handshake = vec![0x01, 0x00, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend(handshake);
    record
}

#[tokio::test]
async fn tls_1_0_and_1_1_client_hellos_are_refused() {
    let pki = Pki::new(false);
    let (_tls, mut server) = start(&pki).await;
    for version in [[0x03, 0x01], [0x03, 0x02]] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(version)).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        // One fatal alert record and nothing else: no ServerHello.
        assert_eq!(reply.first(), Some(&0x15), "{version:?}: {reply:?}");
        assert_eq!(
            reply.get(5),
            Some(&0x02),
            "{version:?}: fatal alert expected, got {reply:?}"
        );
        assert_eq!(server.principal().await, Err("incompatible"), "{version:?}");
    }
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_handshakes_and_keeps_open_connections() {
    let pki = Pki::new(false);
    let (tls, mut server) = start(&pki).await;
    let (_, config) = pki.client(PAYMENTS);
    let before = tls.server_cert_not_after();

    let mut old = connect(&config, server.addr).await.unwrap();
    server.principal().await.unwrap();
    assert_eq!(served_certificate(&old), pki.server.cert_der);

    // A rotation job writes a new certificate and key, then sends SIGHUP.
    let rotated = pki.ca.issue_server(&["localhost"], 2 * DAY).unwrap();
    assert_ne!(rotated.serial, pki.server.serial);
    write(&pki.files.cert, &rotated.cert_pem);
    write(&pki.files.key, &rotated.key_pem);
    tls.reload().unwrap();
    assert!(tls.server_cert_not_after() > before);

    // A new handshake (same client config, so it would resume if the server let it) sees the
    // new certificate…
    let new = connect(&config, server.addr).await.unwrap();
    server.principal().await.unwrap();
    assert_eq!(served_certificate(&new), rotated.cert_der);
    assert!(!new.get_ref().1.is_handshaking());

    // …while the connection opened before the reload keeps working on the old one.
    for i in 0..3 {
        echo(&mut old, format!("still here {i}").as_bytes())
            .await
            .unwrap();
    }
    assert_eq!(served_certificate(&old), pki.server.cert_der);
}

#[tokio::test]
async fn a_broken_file_on_reload_keeps_the_old_configuration() {
    let pki = Pki::new(true);
    let (tls, mut server) = start(&pki).await;
    let (_, config) = pki.client(PAYMENTS);
    let key_file = pki.files.key.display().to_string();
    let cert_file = pki.files.cert.display().to_string();
    let crl_path = pki.path("crl.pem");
    let crl_file = crl_path.display().to_string();
    let good_key = std::fs::read(&pki.files.key).unwrap();
    let good_cert = std::fs::read(&pki.files.cert).unwrap();
    let good_crl = std::fs::read(pki.path("crl.pem")).unwrap();

    let other = pki.ca.issue_server(&["localhost"], DAY).unwrap();
    let cases: Vec<(&Path, Vec<u8>, String)> = vec![
        (
            &pki.files.key,
            b"not a key".to_vec(),
            format!("{key_file}: not a PKCS#8/SEC1/PKCS#1 private key"),
        ),
        (
            &pki.files.key,
            other.key_pem.as_bytes().to_vec(),
            format!("{key_file}: private key does not match the certificate in {cert_file}"),
        ),
        (
            &pki.files.cert,
            b"".to_vec(),
            format!("{cert_file}: no certificate found"),
        ),
        (
            &pki.files.cert,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n".to_vec(),
            format!("{cert_file}: malformed PEM"),
        ),
        (
            &pki.files.cert,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            format!("{cert_file}: certificate does not parse"),
        ),
        (
            &crl_path,
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".to_vec(),
            format!("{crl_file}: CRL 1 of 1 does not parse"),
        ),
        (
            &crl_path,
            b"\x30\x00".to_vec(),
            format!("{crl_file}: CRL 1 of 1 does not parse"),
        ),
    ];
    for (path, contents, expected) in cases {
        write(path, &contents);
        let err = tls.reload().unwrap_err().to_string();
        assert!(
            err.starts_with(&expected),
            "expected `{expected}…`, got `{err}`"
        );

        // The old configuration still serves new handshakes.
        let stream = connect(&config, server.addr).await.unwrap();
        assert_eq!(server.principal().await.unwrap(), PAYMENTS);
        assert_eq!(served_certificate(&stream), pki.server.cert_der);

        write(&pki.files.key, &good_key);
        write(&pki.files.cert, &good_cert);
        write(&pki.path("crl.pem"), &good_crl);
    }

    // A vanished file is named too.
    std::fs::remove_file(&pki.files.key).unwrap();
    let err = tls.reload().unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{key_file}: cannot read: ")),
        "{err}"
    );
    write(&pki.files.key, &good_key);
    tls.reload().unwrap();
}

#[test]
fn loading_refuses_expired_and_unusable_files_and_names_them() {
    let pki = Pki::new(false);
    let ca_file = pki.files.client_ca.display().to_string();

    // An expired client CA.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    write(
        &pki.files.client_ca,
        params.self_signed(&key).unwrap().pem(),
    );
    let err = ServerTls::load(&pki.files).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{ca_file}: certificate expired at 2021-01-01T00:00:00Z"
        )),
        "{err}"
    );

    // A key instead of a certificate.
    write(&pki.files.client_ca, &pki.server.key_pem);
    let err = ServerTls::load(&pki.files).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{ca_file}: no certificate found (expected PEM `-----BEGIN CERTIFICATE-----`)")
    );

    // Two keys in the key file.
    write(&pki.files.client_ca, pki.ca.cert_pem());
    write(
        &pki.files.key,
        format!("{}{}", *pki.server.key_pem, *pki.server.key_pem),
    );
    let err = ServerTls::load(&pki.files).unwrap_err();
    assert!(matches!(err, TlsError::SeveralPrivateKeys { .. }), "{err}");

    // A certificate as the key.
    write(&pki.files.key, &pki.server.cert_pem);
    let err = ServerTls::load(&pki.files).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
}

#[test]
fn load_client_config_names_its_files() {
    let pki = Pki::new(false);
    let cert = pki.ca.issue_client(PAYMENTS, DAY).unwrap();
    let (cert_path, key_path) = (pki.path("client.pem"), pki.path("client-key.pem"));
    write(&cert_path, &cert.cert_pem);
    write(&key_path, &cert.key_pem);
    load_client_config(&pki.files.client_ca, &cert_path, &key_path).unwrap();

    write(
        &key_path,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let err = load_client_config(&pki.files.client_ca, &cert_path, &key_path)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: not a PKCS#8/SEC1/PKCS#1 private key",
            key_path.display()
        )),
        "{err}"
    );

    let missing = pki.path("nope.pem");
    let err = load_client_config(&missing, &cert_path, &key_path)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read", missing.display())),
        "{err}"
    );
}
