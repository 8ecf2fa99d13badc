//! A vault impostor: a machine in the network path that can answer TLS for the vault (a valid
//! server certificate from the vault's CA, as a stolen certificate or a hostile load balancer
//! would have). It answers `GET /v1/sys/seal-status` with whatever status the test gives it and
//! records every other request, which is what a custodian's client must never send it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tresor_server::tls::pki::DevCa;

const DAY: Duration = Duration::from_secs(24 * 3600);

pub struct Impostor {
    /// `https://127.0.0.1:<port>`: point clients here.
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Impostor {
    /// Listens on loopback with a server certificate from `ca`, answering the seal status with
    /// `seal_status` (a JSON body).
    pub async fn start(ca: &DevCa, seal_status: serde_json::Value) -> Self {
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let body = seal_status.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let log = log.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    loop {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            match stream.read(&mut byte).await {
                                Ok(1) => head.push(byte[0]),
                                _ => return,
                            }
                        }
                        let text = String::from_utf8_lossy(&head).into_owned();
                        let line = text.lines().next().unwrap_or_default().to_owned();
                        // Swallow a body, if any, so the connection stays in step.
                        let length = text
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())
                                    .flatten()
                            })
                            .unwrap_or(0);
                        let mut rest = vec![0u8; length];
                        if stream.read_exact(&mut rest).await.is_err() {
                            return;
                        }
                        let (status, answer) = if line.starts_with("GET /v1/sys/seal-status ") {
                            ("200 OK", body.clone())
                        } else {
                            log.lock().unwrap().push(line);
                            ("500 Internal Server Error", "{\"errors\":[]}".to_owned())
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Impostor {
            url,
            requests,
            task,
        }
    }

    /// Every request but the seal status: what a custodian's client sent it.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.task.abort();
    }
}
