//! The baseline: a minimal server with the vault's TLS and HTTP settings that reads each request
//! and answers it with a body recorded from the vault, doing no vault work. What a client gets
//! from it is the ceiling for the vault on the same machine: mutual TLS, HTTP/1.1 keep-alive,
//! the same bytes on the wire, and nothing else.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::{BenchError, Target};
use tresor_server::tls::pki::DevCa;
use tresor_server::tls::{ServerTls, ServerTlsFiles};

/// The principal of the ceiling's client certificate.
const PRINCIPAL: &str = "spiffe://bench.tresor.local/client";
const VALIDITY: Duration = Duration::from_secs(86_400);
/// A request id of the length the vault sends, so headers are the same size too.
const REQUEST_ID: &str = "00000000-0000-4000-8000-000000000000";

/// A running baseline server; stopped when dropped. (The TLS files it starts from are removed
/// as soon as they are loaded.)
///
/// It runs on its own tokio runtime (threads of its own, as many workers as the vault's
/// default), not on the caller's: sharing the load generator's worker threads would let a
/// request and its answer be handled without crossing threads, which the vault, a separate
/// process, never gets. With its own runtime the ceiling pays the same wake-ups as the vault.
pub struct Ceiling {
    target: Target,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Ceiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ceiling").field("addr", &self.addr).finish()
    }
}

impl Ceiling {
    /// Starts on 127.0.0.1 (a free port) with a fresh CA, server and client certificate, and
    /// the vault's TLS configuration ([`ServerTls`]: mutual TLS, same provider, versions and
    /// suites). A POST to a path in `answers` gets 200 and that body; anything else 404.
    pub async fn start(answers: Vec<(String, Bytes)>) -> Result<Ceiling, BenchError> {
        let fail = |e: &dyn std::fmt::Display| BenchError::Ceiling(e.to_string());
        let ca = DevCa::generate("Tresor bench ceiling CA").map_err(|e| fail(&e))?;
        let server = ca
            .issue_server(&["localhost", "127.0.0.1"], VALIDITY)
            .map_err(|e| fail(&e))?;
        let client = ca.issue_client(PRINCIPAL, VALIDITY).map_err(|e| fail(&e))?;
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tresor-bench-ceiling-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| -> std::io::Result<()> {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
            std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
            std::fs::write(dir.join("server.pem"), &server.cert_pem)?;
            std::fs::write(dir.join("server-key.pem"), server.key_pem.as_bytes())?;
            Ok(())
        })();
        let loaded = written.map_err(|e| fail(&e)).and_then(|()| {
            ServerTls::load(&ServerTlsFiles {
                cert: dir.join("server.pem"),
                key: dir.join("server-key.pem"),
                client_ca: dir.join("ca.pem"),
                crls: Vec::new(),
            })
            .map_err(|e| fail(&e))
        });
        let _ = std::fs::remove_dir_all(&dir);
        let server_tls = loaded?;
        let client_config = tresor_client::tls::client_config(
            ca.cert_pem().as_bytes(),
            client.cert_pem.as_bytes(),
            client.key_pem.as_bytes(),
        )?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| fail(&e))?;
        listener.set_nonblocking(true).map_err(|e| fail(&e))?;
        let addr = listener.local_addr().map_err(|e| fail(&e))?;
        let target = Target::new(&format!("https://127.0.0.1:{}", addr.port()), client_config)?;
        let answers: Arc<HashMap<String, Bytes>> = Arc::new(answers.into_iter().collect());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("tresor-ceiling")
            .build()
            .map_err(|e| fail(&e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tresor-ceiling".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = accept_loop(listener, server_tls, answers) => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_background();
            })
            .map_err(|e| fail(&e))?;
        Ok(Ceiling {
            target,
            addr,
            stop: Some(stop),
        })
    }

    /// Where to send the load.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, tls: ServerTls, answers: Arc<HashMap<String, Bytes>>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tls.acceptor();
        let answers = answers.clone();
        // Stopping the accept loop drops the set, which aborts every connection.
        connections.spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let answers = answers.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    // Read the whole body, as the vault does, and throw it away.
                    let _ = body.collect().await;
                    let mut response = match answers.get(parts.uri.path()) {
                        Some(answer) => Response::new(Full::new(answer.clone())),
                        None => {
                            let mut r = Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        }
                    };
                    let headers = response.headers_mut();
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    headers.insert("x-request-id", HeaderValue::from_static(REQUEST_ID));
                    Ok::<_, Infallible>(response)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .keep_alive(true);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}
