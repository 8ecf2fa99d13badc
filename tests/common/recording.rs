//! A recording TLS-terminating proxy: what an attacker who can terminate TLS in front of the
//! vault (a corporate proxy, a load balancer with the server key) sees. Clients connect to it
//! over TLS with a server certificate from the test CA; it records every plaintext byte the
//! client sends (request lines, headers and bodies) and forwards them to the real server over
//! mutual TLS with its own client certificate.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tresor_server::tls::pki::{DevCa, IssuedCert};

const DAY: Duration = Duration::from_secs(24 * 3600);

pub struct RecordingProxy {
    /// `https://127.0.0.1:<port>`: point clients here.
    pub url: String,
    recorded: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Listens on loopback; forwards to `upstream` presenting `client_cert`.
    pub async fn start(ca: &DevCa, upstream: SocketAddr, client_cert: &IssuedCert) -> Self {
        let cert = ca.issue_server(&["localhost", "127.0.0.1"], DAY).unwrap();
        let mut config = ServerConfig::builder_with_provider(tresor_server::tls::provider())
            .with_protocol_versions(tresor_server::tls::PROTOCOL_VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.cert_der.clone()],
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let upstream_config = super::server::tls_config(ca, Some(client_cert));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let sink = recorded.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let upstream_config = upstream_config.clone();
                let sink = sink.clone();
                tokio::spawn(async move {
                    let Ok(client) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(server) = super::server::connect(upstream, upstream_config).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = tokio::io::split(client);
                    let (mut server_read, mut server_write) = tokio::io::split(server);
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                                    if server_write.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        RecordingProxy {
            url,
            recorded,
            task,
        }
    }

    /// Every byte clients have sent so far, in plaintext.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap().clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
