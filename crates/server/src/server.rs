//! The service: a TCP listener, the TLS handshake (client certificate required), HTTP/1.1 and
//! HTTP/2 on tokio + hyper, and the API behind it.
//!
//! Every limit that lets one client hold resources is bounded: connections (refused beyond
//! `max_connections`), the handshake, the time to send headers and body, idle keep-alive time,
//! and the body size. A reload (SIGHUP) swaps the TLS configuration and the policy set for new
//! connections and requests without touching open ones; shutdown stops accepting, lets
//! in-flight requests finish, then seals the vault so every key is zeroized.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::api::{ApiState, Caller};
use crate::audit::{AuditEvent, AuditLog, AuditWriteError, Outcome};
use crate::config::{AuditSetting, Config};
use crate::metrics::Metrics;
use crate::pins::PinsError;
use crate::policy::{PolicyError, PolicyHandle};
use crate::services::Services;
use crate::tls::{self, ServerTls, ServerTlsFiles, TlsError};
use tresor_core::{Error, SledStore, Vault, VaultOptions};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// TLS files are missing or invalid.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The policy set is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The vault could not be opened.
    #[error(transparent)]
    Vault(#[from] Error),
    /// The audit log cannot be written: the server does not start without it.
    #[error(transparent)]
    Audit(#[from] AuditWriteError),
    /// The node identity key cannot be used.
    #[error(transparent)]
    NodeIdentity(#[from] crate::node::NodeIdentityError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What a reload changed, and what it refused (the old setting then stays in force).
#[derive(Debug)]
pub struct ReloadReport {
    /// Server certificate, key, client CA and CRLs.
    pub tls: Result<(), TlsError>,
    /// Policy files.
    pub policies: Result<(), PolicyError>,
}

struct Shared {
    api: Arc<ApiState>,
    /// The audit log's anchor in the vault (the vault holds it weakly, as its unseal guard).
    _anchor: Option<Arc<crate::anchor::AuditAnchor>>,
    tls: ServerTls,
    config: Config,
    connections: Arc<Semaphore>,
    throttle: HandshakeThrottle,
}

impl Shared {
    /// Counts, audits and remembers a failed handshake (or a certificate without principal).
    fn handshake_failed(&self, peer: SocketAddr, reason: &'static str, detail: &str) {
        // The throttle first: once the failure shows in the metrics, it also slows the address.
        self.throttle.failed(peer.ip());
        self.api.metrics.record_handshake_failure(reason);
        tracing::info!(peer = %peer, reason, detail, "TLS handshake failed");
        if let Some(audit) = &self.api.audit {
            let event = AuditEvent {
                source: peer.to_string(),
                operation: "tls-handshake".to_owned(),
                outcome: Some(Outcome::HandshakeFailed),
                reason: reason.to_owned(),
                ..AuditEvent::default()
            };
            if let Err(e) = audit.record(&event) {
                tracing::error!(error = %e, "cannot audit a failed handshake");
            }
        }
    }
}

/// Slows down addresses that keep failing the handshake (certificate guessing, scanners): past
/// `handshake_failures_allowed` failures in a minute, each new connection from that address
/// waits 100 ms, doubling per further failure, up to `handshake_failure_max_delay`.
struct HandshakeThrottle {
    allowed: u32,
    max_delay: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
const THROTTLE_MAX_ADDRESSES: usize = 100_000;

impl HandshakeThrottle {
    fn delay_for(&self, ip: IpAddr) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&ip) {
            Some((since, count)) if since.elapsed() < THROTTLE_WINDOW && *count > self.allowed => {
                let doublings = (*count - self.allowed - 1).min(16);
                (Duration::from_millis(100) * 2u32.pow(doublings)).min(self.max_delay)
            }
            _ => Duration::ZERO,
        }
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= THROTTLE_MAX_ADDRESSES {
            failures.retain(|_, (since, _)| since.elapsed() < THROTTLE_WINDOW);
        }
        let entry = failures.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= THROTTLE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The vault being served.
    pub fn vault(&self) -> &Vault {
        &self.shared.api.services.vault
    }

    /// The server's counters (also served at `/v1/sys/metrics`).
    pub fn stats(&self) -> &Metrics {
        &self.shared.api.metrics
    }

    /// The audit log, unless disabled.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.shared.api.audit.as_deref()
    }

    /// Rotates every key whose `auto_rotate_period` has passed, as the server does once a
    /// minute: each rotation is audited like a request (principal [`AUTO_ROTATE_PRINCIPAL`]),
    /// and a key whose `started` line cannot be written is not rotated.
    pub fn rotate_due_keys(&self) -> Result<Vec<tresor_core::KeyInfo>, Error> {
        rotate_due_keys(&self.shared.api)
    }

    /// Destroys the keys and tenants whose deletion window has ended, as the server does once a
    /// minute: each destruction is audited like a request (principal
    /// [`crate::scheduled_deletion::DELETION_PRINCIPAL`]).
    pub fn destroy_due_deletions(&self) -> Result<Vec<tresor_core::DueDeletion>, Error> {
        crate::scheduled_deletion::destroy_due_deletions(&self.shared.api)
    }

    /// Starts what the server does by itself once a minute: rotating keys whose
    /// `auto_rotate_period` has passed and re-issuing pin manifests before they expire.
    pub fn spawn_background(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(background(self.shared.api.clone()))
    }

    /// Re-reads the TLS files and the policy directory (what SIGHUP does). Each part is swapped
    /// only if it loads; otherwise the old one stays and the report says why.
    pub fn reload(&self) -> ReloadReport {
        let tls = self.shared.tls.reload();
        let policies = self
            .shared
            .api
            .policies
            .reload(&self.shared.config.policies.dir);
        record_policy_load(
            &self.shared.api,
            &self.shared.config.policies.dir,
            &policies,
        );
        ReloadReport { tls, policies }
    }

    /// Stops accepting, lets open requests finish (up to 30 s), then seals the vault so every
    /// unwrapped key is dropped and zeroized.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept_loop.await;
        let was_unsealed = !self.shared.api.services.vault.is_sealed();
        self.shared.api.services.vault.seal();
        if was_unsealed {
            record_server_event(
                &self.shared.api,
                "sealed",
                Outcome::Ok,
                "the server is shutting down".to_owned(),
            );
        }
        if let Some(audit) = &self.shared.api.audit {
            if let Err(e) = audit.close() {
                tracing::error!(error = %e, "cannot write the closing audit checkpoint");
            }
        }
    }
}

/// Says at start what the vault waits for, so the operator reading the log knows the next step.
fn log_seal_state(vault: &Vault) {
    match vault.seal_status() {
        Ok(status) if !status.initialized => tracing::info!(
            "not initialised: waiting for `tresor operator init` (policies must grant `init`, then `unseal`)"
        ),
        Ok(status) if status.sealed => tracing::info!(
            threshold = status.threshold,
            shares = status.shares,
            "sealed: waiting for {} of {} custodians ({}) to run `tresor operator unseal`",
            status.threshold,
            status.shares,
            status.custodians.join(", ")
        ),
        Ok(_) => tracing::info!("unsealed"),
        Err(e) => tracing::warn!(error = %e, "cannot read the seal state"),
    }
}

/// Opens the configured store and vault (sealed).
pub fn open_vault(config: &Config) -> Result<Vault, ServerError> {
    let store = open_store(config)?;
    let node = crate::node::load_or_create(&config.node.identity_key)?;
    let mut options =
        VaultOptions::new(config.environment.clone()).with_node_identity(Arc::new(node));
    options.unseal_timeout = config.unseal.timeout;
    Ok(Vault::open(store, options)?)
}

/// The store `config`'s `[storage]` names (what `tresor server` serves and `tresor operator
/// restore` writes into).
pub fn open_store(config: &Config) -> Result<Arc<dyn tresor_core::Store>, ServerError> {
    let store = SledStore::open(&config.storage.path).map_err(Error::from)?;
    Ok(Arc::new(store))
}

/// What is checked and acquired before anything is written: the TLS files, the policy set
/// and the listening socket.
struct Prepared {
    tls: ServerTls,
    policies: Arc<PolicyHandle>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

/// Loads the TLS files and policies and binds the listener. Writes nothing.
async fn prepare(config: &Config) -> Result<Prepared, ServerError> {
    let tls = ServerTls::load_requiring_principal(
        &ServerTlsFiles {
            cert: config.tls.cert.clone(),
            key: config.tls.key.clone(),
            client_ca: config.tls.client_ca.clone(),
            crls: config.tls.crls.clone(),
        },
        config.tls.allow_cn_fallback,
    )?;
    let policies = Arc::new(PolicyHandle::load_dir(
        crate::operations(),
        &config.policies.dir,
    )?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            address: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        address: config.listen,
        source,
    })?;
    Ok(Prepared {
        tls,
        policies,
        listener,
        local_addr,
    })
}

/// Binds the listener and starts serving `vault` with `config`.
pub async fn start(config: Config, vault: Vault) -> Result<ServerHandle, ServerError> {
    let prepared = prepare(&config).await?;
    launch(config, vault, prepared)
}

/// Checks everything that can be checked without writing (configuration, TLS files, policies,
/// the listen address), then opens the store and the vault (sealed) and starts serving: what
/// `tresor server` does. A start that fails leaves no new store behind: if the store was
/// created by this call and the audit log then cannot be opened, the store is removed again,
/// so a corrected configuration starts from the same state.
pub async fn open_and_start(config: Config) -> Result<ServerHandle, ServerError> {
    let prepared = prepare(&config).await?;
    let before = StoreDir::note(&config.storage.path);
    let started = open_vault(&config).and_then(|vault| launch(config, vault, prepared));
    if started.is_err() {
        before.undo();
    }
    started
}

/// Whether the store's directory existed before a start, so a failed start can undo creating it.
enum StoreDir {
    /// The directory did not exist: remove this, the topmost directory the start created.
    Absent(PathBuf),
    /// It existed and was empty: empty it again.
    Empty(PathBuf),
    /// It held something already: leave it alone.
    Used,
}

impl StoreDir {
    fn note(path: &Path) -> StoreDir {
        match std::fs::read_dir(path) {
            Ok(mut entries) => match entries.next() {
                None => StoreDir::Empty(path.to_owned()),
                Some(_) => StoreDir::Used,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let created = path
                    .ancestors()
                    .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
                    .last()
                    .unwrap_or(path);
                StoreDir::Absent(created.to_owned())
            }
            Err(_) => StoreDir::Used,
        }
    }

    fn undo(self) {
        let removed = match &self {
            StoreDir::Absent(dir) => std::fs::remove_dir_all(dir).map(|()| dir),
            StoreDir::Empty(dir) => std::fs::read_dir(dir)
                .and_then(|entries| {
                    entries.into_iter().try_for_each(|entry| {
                        let path = entry?.path();
                        if path.is_dir() {
                            std::fs::remove_dir_all(path)
                        } else {
                            std::fs::remove_file(path)
                        }
                    })
                })
                .map(|()| dir),
            StoreDir::Used => return,
        };
        match removed {
            Ok(dir) => {
                tracing::info!(dir = %dir.display(), "start failed: removed the store it had created")
            }
            Err(e) => {
                tracing::warn!(error = %e, "start failed, and the store it created could not be removed")
            }
        }
    }
}

/// Opens the audit log and starts serving.
fn launch(config: Config, vault: Vault, prepared: Prepared) -> Result<ServerHandle, ServerError> {
    let Prepared {
        tls,
        policies,
        listener,
        local_addr,
    } = prepared;
    let audit = match &config.audit {
        AuditSetting::File(file) => Some(Arc::new(AuditLog::open(file.to_audit_config())?)),
        AuditSetting::Disabled(_) => {
            tracing::warn!(
                "the audit trail is disabled (audit = \"disabled\"): nothing records who used which key"
            );
            None
        }
    };
    // The node's name for its anchor: its identity key's fingerprint (one log per node).
    let anchor = audit.as_ref().map(|log| {
        let node = vault
            .node_fingerprint()
            .map_or_else(|| "node".to_owned(), |f| f.replace(':', ""));
        crate::anchor::AuditAnchor::install(&vault, log.clone(), &node)
    });
    let shared = Arc::new(Shared {
        api: Arc::new(ApiState::new(
            Services::new(vault, config.approvals.ttl),
            policies,
            config.limits.clone(),
            audit,
        )),
        _anchor: anchor,
        tls,
        connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        throttle: HandshakeThrottle {
            allowed: config.limits.handshake_failures_allowed,
            max_delay: Duration::from_secs(config.limits.handshake_failure_max_delay),
            failures: Mutex::default(),
        },
        config,
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let accept_loop = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
    tracing::info!(address = %local_addr, "listening");
    record_policy_load(&shared.api, &shared.config.policies.dir, &Ok(()));
    log_seal_state(&shared.api.services.vault);
    Ok(ServerHandle {
        local_addr,
        shared,
        shutdown,
        accept_loop,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                    shared.api.metrics.record_refused_connection();
                    tracing::warn!(peer = %peer, limit = shared.config.limits.max_connections, "connection refused: limits.max_connections reached");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(serve_connection(stream, peer, shared.clone(), shutdown.clone(), permit));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after 30 s; closing them");
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let limits = &shared.config.limits;
    let delay = shared.throttle.delay_for(peer.ip());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let acceptor = shared.tls.acceptor();
    let tls_stream = match tokio::time::timeout(
        Duration::from_secs(limits.handshake_timeout),
        acceptor.accept(stream),
    )
    .await
    {
        Ok(Ok(tls_stream)) => tls_stream,
        Ok(Err(e)) => {
            return shared.handshake_failed(
                peer,
                tls::classify_handshake_error(&e),
                &tls::describe_handshake_error(&e),
            );
        }
        Err(_) => {
            return shared.handshake_failed(
                peer,
                "timeout",
                "no handshake within limits.handshake_timeout",
            );
        }
    };
    let principal =
        match tls::peer_principal(tls_stream.get_ref().1, shared.config.tls.allow_cn_fallback) {
            Ok(principal) => principal,
            Err(e) => return shared.handshake_failed(peer, "no_principal", &e.to_string()),
        };
    shared.api.metrics.connection_opened();
    let caller = Arc::new(Caller::new(principal, peer));
    let activity = Arc::new(Activity::new());
    let service = {
        let api = shared.api.clone();
        let activity = activity.clone();
        let slots = shared.connections.clone();
        service_fn(move |request| {
            let api = api.clone();
            let caller = caller.clone();
            let (busy, others) = activity.begin();
            // HTTP/2 carries many requests on one connection. The first in flight rides on the
            // connection's slot of `max_connections`; each further one takes a slot of its own,
            // so streams cannot multiply what a connection may hold. (HTTP/1.1 has one at a time.)
            let slot = if others == 0 {
                Ok(None)
            } else {
                slots.clone().try_acquire_owned().map(Some)
            };
            async move {
                let response = match slot {
                    Ok(slot) => {
                        let response = crate::api::handle(api, caller, request).await;
                        drop(slot);
                        response
                    }
                    Err(_) => {
                        tracing::warn!(peer = %caller.address, limit = api.limits.max_connections, "request refused: limits.max_connections reached by connections and HTTP/2 streams");
                        Ok(crate::api::refuse_over_capacity(&api, &caller, &request))
                    }
                };
                drop(busy);
                response
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Not hyper's header_read_timeout: its clock also runs while a keep-alive connection waits
    // for its next request (closing it after header_read_timeout whatever idle_timeout says),
    // and it never starts for a client that sends nothing. `Activity` times request heads.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    // HTTP/2 control frames (pings, window updates) arrive between requests too; only the
    // first request of an HTTP/2 connection is timed.
    let http2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let io = Watched {
        inner: tls_stream,
        activity: activity.clone(),
        heads: !http2,
    };
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let idle_timeout = Duration::from_secs(limits.idle_timeout);
    let header_timeout = Duration::from_secs(limits.header_read_timeout);
    let mut idle_check = tokio::time::interval(Duration::from_millis(500));
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = idle_check.tick() => {
                if activity.head_for().is_some_and(|t| t >= header_timeout) {
                    // Dropped without an answer, as hyper does: nothing of a request arrived.
                    tracing::info!(peer = %peer, limit = limits.header_read_timeout, "request headers not received in time (limits.header_read_timeout); closing");
                    break;
                }
                let idle = activity.idle_for();
                if !closing && idle >= idle_timeout {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                } else if closing && idle >= idle_timeout + header_timeout {
                    // A graceful close needs the client: HTTP/2 waits for the acknowledgement
                    // of its GOAWAY's ping, and for any header block the client has begun. An
                    // idle client that withholds them would keep the connection (and its slot
                    // of max_connections) for good; it gets header_read_timeout, then is dropped.
                    tracing::info!(peer = %peer, "idle connection did not close when asked; dropping it");
                    break;
                }
            }
        }
    }
    shared.api.metrics.connection_closed();
}

/// When a connection last did something, so idle keep-alive connections can be closed, and
/// since when the head of its next request has been arriving, so a slow one can be cut off.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    last_millis: AtomicU64,
    /// 1 + milliseconds since `start` when the next request's head began (its first byte; for
    /// the first request, the end of the handshake); 0 while no head is being read.
    head_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_millis: AtomicU64::new(0),
            // The first request's head is due from the moment the connection is up.
            head_since: AtomicU64::new(1),
        }
    }

    fn now_millis(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A request's head is complete and it is being served; also how many other requests of
    /// this connection are in flight (HTTP/2 streams).
    fn begin(self: &Arc<Self>) -> (Busy, usize) {
        let others = self.in_flight.fetch_add(1, Ordering::Relaxed);
        // The service is called once the head is complete.
        self.head_since.store(0, Ordering::Relaxed);
        (Busy(self.clone()), others)
    }

    /// Bytes arrived. Between requests, they start the next request's head. (Bytes of a body
    /// the handler left unread also land here; such a connection then gets header_read_timeout
    /// instead of idle_timeout, which is only stricter.)
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let now = self.now_millis() + 1;
            let _ = self
                .head_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// How long the head of the next request has been arriving, if one is.
    fn head_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(
                self.now_millis().saturating_sub(since - 1),
            )),
        }
    }

    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.start.elapsed().as_millis() as u64;
        self.0.last_millis.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's stream, telling `Activity` when bytes arrive (if `heads`).
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    heads: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.heads && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs `tresor server`: serves until SIGTERM or ctrl-c, reloading on SIGHUP, rotating keys
/// whose `auto_rotate_period` has passed and re-issuing pin manifests before they expire.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let handle = open_and_start(config).await?;
    let rotation = handle.spawn_background();
    wait_for_signals(&handle).await;
    rotation.abort();
    tracing::info!("shutting down: finishing open requests, then sealing");
    handle.shutdown().await;
    Ok(())
}

/// Serves until SIGTERM or ctrl-c; SIGHUP reloads.
pub async fn wait_for_signals(handle: &ServerHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hangup), Ok(mut terminate)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with ctrl-c");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let report = handle.reload();
                match report.tls {
                    Ok(()) => tracing::info!("reloaded TLS certificate, key, client CA and CRLs"),
                    Err(e) => tracing::error!(error = %e, "TLS reload refused; the previous configuration stays"),
                }
                match report.policies {
                    Ok(()) => tracing::info!("reloaded policies"),
                    Err(e) => tracing::error!(error = %e, "policy reload refused; the previous policies stay"),
                }
            }
            _ = terminate.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

/// Rotates due keys, destroys what a deletion window has run out on and re-signs pin manifests
/// past half their freshness, once a minute while unsealed. Each change is audited like a request.
async fn background(api: Arc<ApiState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if api.services.vault.is_sealed() {
            continue;
        }
        let task_api = api.clone();
        match tokio::task::spawn_blocking(move || rotate_due_keys(&task_api)).await {
            Ok(Ok(_)) | Ok(Err(Error::Sealed)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "auto-rotation failed"),
            Err(e) => tracing::error!(error = %e, "auto-rotation task panicked"),
        }
        let task_api = api.clone();
        match tokio::task::spawn_blocking(move || {
            crate::scheduled_deletion::destroy_due_deletions(&task_api)
        })
        .await
        {
            Ok(Ok(_)) | Ok(Err(Error::Sealed)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled destruction failed"),
            Err(e) => tracing::error!(error = %e, "scheduled destruction task panicked"),
        }
        let task_api = api.clone();
        match tokio::task::spawn_blocking(move || reissue_due_pin_manifests(&task_api)).await {
            Ok(Ok(())) | Ok(Err(PinsError::Vault(Error::Sealed))) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "pin manifest re-issue failed"),
            Err(e) => tracing::error!(error = %e, "pin manifest re-issue task panicked"),
        }
    }
}

/// Re-signs the pin manifests that are past half their freshness and audits each one.
fn reissue_due_pin_manifests(api: &ApiState) -> Result<(), PinsError> {
    for (app, version) in api.services.pins.reissue_due_pin_manifests()? {
        tracing::info!(app = %app, version, "pin manifest re-issued before it expires");
        let event = AuditEvent {
            key: Some(app),
            key_version: u32::try_from(version).ok(),
            outcome: Some(Outcome::Ok),
            reason: "manifest re-issued before it expires".to_owned(),
            ..background_event(crate::api::pins::mount::MANAGE)
        };
        if let Some(audit) = &api.audit {
            if let Err(e) = audit.record(&event) {
                tracing::error!(error = %e, "cannot audit a pin manifest re-issue");
            }
        }
    }
    Ok(())
}

/// The principal audit lines name for what the server does by itself.
pub const AUTO_ROTATE_PRINCIPAL: &str = "tresor:auto-rotate";

/// An audit line for `operation` done by the server itself (no caller, no source address).
/// Writes a line the server makes about itself (principal `tresor:server`): what changed the
/// vault's state or its rules without a request doing it.
fn record_server_event(api: &ApiState, operation: &str, outcome: Outcome, reason: String) {
    let Some(audit) = &api.audit else {
        return;
    };
    let event = AuditEvent {
        principal: crate::api::SERVER_PRINCIPAL.to_owned(),
        source: "-".to_owned(),
        operation: operation.to_owned(),
        outcome: Some(outcome),
        reason,
        ..AuditEvent::default()
    };
    if let Err(e) = audit.record(&event) {
        tracing::error!(error = %e, operation, "audit line not written");
    }
}

/// A `policy-load` line: which files and how many rules are in force, or why a reload was
/// refused (the previous rules then stay).
fn record_policy_load(api: &ApiState, dir: &Path, result: &Result<(), PolicyError>) {
    let (outcome, reason) = match result {
        Ok(()) => {
            let set = api.policies.current();
            (
                Outcome::Ok,
                format!(
                    "{} rules in force from {} ({})",
                    set.len(),
                    dir.display(),
                    set.files().join(", ")
                ),
            )
        }
        Err(e) => (
            Outcome::Error,
            format!("refused, the previous rules stay in force: {e}"),
        ),
    };
    record_server_event(api, "policy-load", outcome, reason);
}

fn background_event(operation: crate::policy::Operation) -> AuditEvent {
    AuditEvent {
        principal: AUTO_ROTATE_PRINCIPAL.to_owned(),
        source: "-".to_owned(),
        operation: operation.name().to_owned(),
        ..AuditEvent::default()
    }
}

/// Rotates every due key, each like an audited request: a `started` line before the change
/// (if it cannot be written the key is not rotated) and an outcome line after.
fn rotate_due_keys(api: &ApiState) -> Result<Vec<tresor_core::KeyInfo>, Error> {
    let mut rotated = Vec::new();
    for (tenant, key) in api.services.vault.due_keys()? {
        let started = Instant::now();
        let mut event = AuditEvent {
            tenant: Some(tenant.clone()),
            key: Some(key.clone()),
            outcome: Some(Outcome::Started),
            reason: "auto_rotate_period has passed".to_owned(),
            ..background_event(crate::api::transit::keys_rotate::ROTATE)
        };
        if let Some(audit) = &api.audit {
            if let Err(e) = audit.record(&event) {
                tracing::error!(error = %e, tenant = %tenant, key = %key, "auto-rotation skipped: its audit line cannot be written");
                continue;
            }
        }
        let result = api.services.vault.rotate_key_if_due(&tenant, &key);
        event.latency_us = started.elapsed().as_micros() as u64;
        match &result {
            Ok(None) => {
                event.outcome = Some(Outcome::Ok);
                event.reason = "no longer due: rotated meanwhile".to_owned();
            }
            Ok(Some(info)) => {
                tracing::info!(tenant = %tenant, key = %key, version = info.latest_version, "auto-rotated");
                event.outcome = Some(Outcome::Ok);
                event.key_version = Some(info.latest_version);
                event.reason.clear();
            }
            Err(e) => {
                tracing::error!(error = %e, tenant = %tenant, key = %key, "auto-rotation failed");
                event.outcome = Some(Outcome::Error);
                event.reason = e.to_string();
            }
        }
        if let Some(audit) = &api.audit {
            if let Err(e) = audit.record(&event) {
                tracing::error!(error = %e, "cannot audit the outcome of an auto-rotation");
            }
        }
        if let Ok(Some(info)) = result {
            rotated.push(info);
        }
    }
    Ok(rotated)
}
