//! The load itself: one task per keep-alive connection, closed or open loop.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{BenchError, Plan, Recorder, Stop, Template, Workload};
use tresor_client::ClientSettings;
use tresor_client::tls;

/// Where the load goes: an address and the TLS configuration to reach it (HTTP/1.1 only).
#[derive(Clone)]
pub struct Target {
    addr: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    host_header: HeaderValue,
    tls: Arc<ClientConfig>,
    /// Sent as `X-Vault-Token` with every request: a Vault-compatible peer (OpenBao's transit)
    /// authenticates requests with a token, where Tresor reads the client certificate.
    token: Option<HeaderValue>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("addr", &self.addr).finish()
    }
}

impl Target {
    /// The server at `settings.addr`, with the client certificate of `settings`.
    pub fn from_settings(settings: &ClientSettings) -> Result<Target, BenchError> {
        let config = tls::load_client_config(
            Path::new(&settings.ca_cert),
            Path::new(&settings.client_cert),
            Path::new(&settings.client_key),
        )?;
        Target::new(&settings.addr, config)
    }

    /// The server at `addr` (`https://host:port`) reached with `config`. The configuration's
    /// ALPN list is replaced by `http/1.1`: every connection carries one request at a time.
    pub fn new(addr: &str, mut config: ClientConfig) -> Result<Target, BenchError> {
        let bad = |why: &str| BenchError::Invalid(format!("invalid address `{addr}`: {why}"));
        let trimmed = addr.trim_end_matches('/');
        let uri: Uri = trimmed.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad(
                "it must start with https:// (Tresor only speaks mutual TLS)",
            ));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = ServerName::try_from(bare.clone())
            .map_err(|_| bad("the host is not a DNS name or an IP address"))?;
        let host_header = HeaderValue::from_str(uri.authority().map_or(host, |a| a.as_str()))
            .map_err(|_| bad("the host cannot be sent in a Host header"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Target {
            addr: trimmed.to_owned(),
            host: bare,
            port,
            server_name,
            host_header,
            tls: Arc::new(config),
            token: None,
        })
    }

    /// The same target, each request carrying `token` as `X-Vault-Token` (for a Vault-compatible
    /// peer such as OpenBao; Tresor itself needs none). Marked sensitive, so hyper never logs it.
    pub fn with_vault_token(mut self, token: &str) -> Result<Target, BenchError> {
        let mut value = HeaderValue::from_str(token).map_err(|_| {
            BenchError::Invalid(
                "invalid Vault token: it must be visible ASCII without line breaks".into(),
            )
        })?;
        if token.is_empty() {
            return Err(BenchError::Invalid(
                "invalid Vault token: it is empty".into(),
            ));
        }
        value.set_sensitive(true);
        self.token = Some(value);
        Ok(self)
    }

    /// `https://host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let stream = TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// The header Vault and OpenBao read a client token from.
const VAULT_TOKEN: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-vault-token");

/// Counters a progress display can read while a run goes on.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests answered (successful or not) since the run began, warm-up included.
    pub done: AtomicU64,
    /// Of those, the failed ones.
    pub failed: AtomicU64,
}

/// How one request ended.
enum Outcome {
    /// 200 (the batch items the server refused inside it).
    Ok { item_errors: u64 },
    /// Another status: the kind (`HTTP 400`) and the server's message.
    Status(StatusCode, Bytes),
    /// The connection broke: it must be opened again.
    Broken(String),
}

/// The URI of each template, parsed once so the load loop does not parse (and allocate) a
/// path per request.
fn uris(templates: &[Template]) -> Vec<Uri> {
    templates
        .iter()
        .map(|t| Uri::try_from(t.path.as_str()).expect("template paths are valid"))
        .collect()
}

/// The POST of `template` to `target`.
fn request(target: &Target, template: &Template, uri: &Uri) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(template.body.clone()));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(HOST, target.host_header.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(token) = &target.token {
        headers.insert(VAULT_TOKEN, token.clone());
    }
    request
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    template: &Template,
    uri: &Uri,
) -> Outcome {
    if let Err(e) = sender.ready().await {
        return Outcome::Broken(e.to_string());
    }
    let response = match sender.send_request(request(target, template, uri)).await {
        Ok(response) => response,
        Err(e) => return Outcome::Broken(e.to_string()),
    };
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Outcome::Broken(e.to_string()),
    };
    if status != StatusCode::OK {
        return Outcome::Status(status, body);
    }
    let item_errors = if template.is_batch() {
        count_item_errors(&body)
    } else {
        0
    };
    Outcome::Ok { item_errors }
}

/// Items of a `batch_results` answer that carry a non-empty `error`.
fn count_item_errors(body: &[u8]) -> u64 {
    memchr::memmem::find_iter(body, br#""error":""#)
        .filter(|&at| body.get(at + 9).is_some_and(|&b| b != b'"'))
        .count() as u64
}

/// The first message of a Vault `{"errors": [...]}` body, or the body itself.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    format!("{status}: {message}")
}

/// Sends each template once and returns each path with the body of its answer. Any answer
/// other than 200 stops the run before it starts, with the server's message.
pub async fn probe(
    target: &Target,
    workload: &Workload,
) -> Result<Vec<(String, Bytes)>, BenchError> {
    let mut sender = target
        .connect()
        .await
        .map_err(|message| BenchError::Connect {
            addr: target.addr.clone(),
            message,
        })?;
    let mut answers = Vec::new();
    let templates = workload.templates();
    for (template, uri) in templates.iter().zip(uris(templates)) {
        if let Err(e) = sender.ready().await {
            return Err(BenchError::Connect {
                addr: target.addr.clone(),
                message: e.to_string(),
            });
        }
        let response = sender
            .send_request(request(target, template, &uri))
            .await
            .map_err(|e| BenchError::Connect {
                addr: target.addr.clone(),
                message: e.to_string(),
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Connect {
                addr: target.addr.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(BenchError::Refused(format!(
                "{} {} answered {}",
                template.operation,
                template.path,
                error_message(status, &body)
            )));
        }
        if template.is_batch() && count_item_errors(&body) > 0 {
            return Err(BenchError::Refused(format!(
                "{} {} refused batch items: {}",
                template.operation,
                template.path,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        answers.push((template.path.clone(), body));
    }
    Ok(answers)
}

/// What every connection task of one phase shares.
struct Phase {
    start: Instant,
    deadline: Option<Instant>,
    limit: Option<u64>,
    rate: Option<f64>,
    next: AtomicU64,
    /// Requests the pacer could not even queue (open loop, the target far behind).
    unsent: AtomicU64,
    live: Arc<Live>,
}

/// How many requests the open loop queues for one connection before it counts further ones
/// as not sent.
const MAX_BACKLOG: usize = 10_000;

/// Why a request that fell due was never sent.
const NOT_SENT: &str = "not sent";

fn not_sent_message() -> String {
    "due before the end of the run but still waiting for its connection: the target did not keep up with --rate".to_owned()
}

impl Phase {
    /// When request `g` is due (open loop).
    fn due(&self, g: u64, rate: f64) -> Instant {
        self.start + Duration::from_secs_f64(g as f64 / rate)
    }
}

/// The open loop's clock: a thread of its own that hands request `g` to connection
/// `g mod c` at `start + g / rate`. Tokio's timers tick in milliseconds, which would send a
/// millisecond's worth of requests in one burst and measure the queue that burst makes; a
/// thread's sleep is precise to tens of microseconds. It stops at the end of the timetable,
/// or when the connections are gone.
fn pace(phase: Arc<Phase>, rate: f64, queues: Vec<tokio::sync::mpsc::Sender<u64>>) {
    let connections = queues.len() as u64;
    let mut g: u64 = 0;
    loop {
        if phase.limit.is_some_and(|n| g >= n) {
            return;
        }
        let due = phase.due(g, rate);
        if phase.deadline.is_some_and(|d| due >= d) {
            return;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        match queues[(g % connections) as usize].try_send(g) {
            Ok(()) => {}
            // The connection is already MAX_BACKLOG requests behind: this one is not queued
            // (memory stays bounded whatever --rate says) and counts as not sent.
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                phase.unsent.fetch_add(1, Ordering::Relaxed);
                phase.live.done.fetch_add(1, Ordering::Relaxed);
                phase.live.failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
        }
        g += 1;
    }
}

/// Runs `plan` against `target`: opens the connections (handshakes are not measured), sends
/// the warm-up load if any, then the measured load. Fails only if connections cannot be opened
/// at all; errors during the run are counted in the result.
pub async fn run(
    target: &Target,
    workload: &Workload,
    plan: &Plan,
    live: Arc<Live>,
) -> Result<Recorder, BenchError> {
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..plan.connections {
        let target = target.clone();
        opening.spawn(async move { target.connect().await });
    }
    let mut senders = Vec::with_capacity(plan.connections);
    while let Some(joined) = opening.join_next().await {
        let sender = joined
            .map_err(|e| BenchError::Connect {
                addr: target.addr.clone(),
                message: e.to_string(),
            })?
            .map_err(|message| BenchError::Connect {
                addr: target.addr.clone(),
                message,
            })?;
        senders.push(sender);
    }
    let templates: Arc<[Template]> = workload.templates().into();
    if !plan.warmup.is_zero() {
        let (back, _) = phase(
            target,
            &templates,
            senders,
            Stop::Duration(plan.warmup),
            None,
            live.clone(),
        )
        .await;
        senders = back;
    }
    let (_, recorder) = phase(target, &templates, senders, plan.stop, plan.rate, live).await;
    Ok(recorder)
}

async fn phase(
    target: &Target,
    templates: &Arc<[Template]>,
    senders: Vec<SendRequest<Full<Bytes>>>,
    stop: Stop,
    rate: Option<f64>,
    live: Arc<Live>,
) -> (Vec<SendRequest<Full<Bytes>>>, Recorder) {
    let start = Instant::now();
    let (deadline, limit) = match stop {
        Stop::Duration(d) => (Some(start + d), None),
        Stop::Requests(n) => (None, Some(n)),
    };
    let shared = Arc::new(Phase {
        start,
        deadline,
        limit,
        rate,
        next: AtomicU64::new(0),
        unsent: AtomicU64::new(0),
        live,
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut queues = Vec::new();
    for sender in senders {
        let schedule = rate.map(|_| {
            let (queue, schedule) = tokio::sync::mpsc::channel(MAX_BACKLOG);
            queues.push(queue);
            schedule
        });
        tasks.spawn(connection(
            sender,
            schedule,
            target.clone(),
            templates.clone(),
            shared.clone(),
        ));
    }
    if let Some(rate) = rate {
        let phase = shared.clone();
        std::thread::Builder::new()
            .name("tresor-bench-pacer".into())
            .spawn(move || pace(phase, rate, queues))
            .expect("a thread can be started");
    }
    let mut senders = Vec::new();
    let mut total = Recorder::new();
    while let Some(joined) = tasks.join_next().await {
        let (sender, recorder) = joined.expect("connection tasks do not panic");
        senders.extend(sender);
        total.merge(&recorder);
    }
    total.set_elapsed(start.elapsed());
    let unsent = shared.unsent.load(Ordering::Relaxed);
    if unsent > 0 {
        total.record_errors(NOT_SENT, unsent, not_sent_message);
    }
    (senders, total)
}

/// One connection's loop: closed (the next request as soon as an answer is in) or, with a
/// `schedule` from the pacer, open. Returns its connection (if still open) and what it
/// recorded.
async fn connection(
    sender: SendRequest<Full<Bytes>>,
    mut schedule: Option<tokio::sync::mpsc::Receiver<u64>>,
    target: Target,
    templates: Arc<[Template]>,
    phase: Arc<Phase>,
) -> (Option<SendRequest<Full<Bytes>>>, Recorder) {
    let mut sender = Some(sender);
    let mut recorder = Recorder::new();
    let uris = uris(&templates);
    // When this connection's previous request ended.
    let mut idle_since = phase.start;
    loop {
        // Which request is next, and from when its latency counts.
        let (g, from) = match (&mut schedule, phase.rate) {
            (Some(schedule), Some(rate)) => {
                let Some(g) = schedule.recv().await else {
                    break;
                };
                let due = phase.due(g, rate);
                let now = Instant::now();
                if phase.deadline.is_some_and(|d| now >= d) && idle_since > due {
                    // Still queued behind earlier requests when the run ended: the target did
                    // not keep up. (One handed over on time just at the end is still sent.)
                    phase.live.done.fetch_add(1, Ordering::Relaxed);
                    phase.live.failed.fetch_add(1, Ordering::Relaxed);
                    recorder.record_error(NOT_SENT, not_sent_message);
                    continue;
                }
                // Busy with the previous request when this one fell due: the wait is part of
                // its latency (no coordinated omission). Idle: it counts from now, so the
                // pacer's own lateness is not blamed on the target.
                (g, if idle_since > due { due } else { now })
            }
            _ => {
                let g = phase.next.fetch_add(1, Ordering::Relaxed);
                if phase.limit.is_some_and(|n| g >= n)
                    || phase.deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                (g, Instant::now())
            }
        };
        let index = (g % templates.len() as u64) as usize;
        let template = &templates[index];
        let conn = match &mut sender {
            Some(s) => s,
            None => match target.connect().await {
                Ok(s) => sender.insert(s),
                Err(message) => {
                    recorder.record_error("connect", || message);
                    phase.live.done.fetch_add(1, Ordering::Relaxed);
                    phase.live.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let outcome = send(conn, &target, template, &uris[index]).await;
        idle_since = Instant::now();
        let latency = idle_since - from;
        phase.live.done.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok { item_errors } => {
                let items = template.items - item_errors.min(template.items);
                let bytes = template.bytes / template.items * items;
                recorder.record_ok(latency, items, bytes, item_errors);
                if item_errors > 0 {
                    phase.live.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::Status(status, body) => {
                phase.live.failed.fetch_add(1, Ordering::Relaxed);
                recorder.record_error(&format!("HTTP {}", status.as_u16()), || {
                    error_message(status, &body)
                });
            }
            Outcome::Broken(message) => {
                phase.live.failed.fetch_add(1, Ordering::Relaxed);
                recorder.record_error("connection", || message);
                sender = None;
            }
        }
    }
    (sender, recorder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_refused_batch_items() {
        let body = br#"{"data":{"batch_results":[{"ciphertext":"x","reference":""},{"error":"bad","reference":""},{"error":"","reference":""}]}}"#;
        assert_eq!(count_item_errors(body), 1);
        assert_eq!(count_item_errors(b"{}"), 0);
    }
}
