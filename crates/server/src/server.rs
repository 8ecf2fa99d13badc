//! The service: a TCP listener, the TLS handshake (client certificate required), HTTP/1.1 and
//! HTTP/2 on tokio + hyper, and the API behind it.
//!
//! Every limit that lets one client hold resources is bounded: connections (refused beyond
//! `max_connections`), the handshake, the time to send headers and body, idle keep-alive time,
//! and the body size. A reload (SIGHUP) swaps the TLS configuration and the policy set for new
//! connections and requests without touching open ones; shutdown stops accepting, lets
//! in-flight requests finish, then seals the vault so every key is zeroized.

use std::collections::{HashMap, VecDeque};
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
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::api::{ApiState, Caller};
use crate::audit::{AuditEvent, AuditLog, AuditWriteError, Outcome};
use crate::config::{AuditSetting, Backend, Config};
use crate::metrics::Metrics;
use crate::pins::PinsError;
use crate::policy::{PolicyError, PolicyHandle};
use crate::services::Services;
use crate::tls::{self, ServerTls, ServerTlsFiles, TlsError};
use tresor_core::{Error, SledStore, Store, Vault, VaultOptions};

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
    /// The PostgreSQL store cannot be opened.
    #[error(transparent)]
    Storage(#[from] tresor_postgres::PgError),
    /// The audit log cannot be written: the server does not start without it.
    #[error(transparent)]
    Audit(#[from] AuditWriteError),
    /// The node identity key cannot be used.
    #[error(transparent)]
    NodeIdentity(#[from] crate::node::NodeIdentityError),
    /// Peer unseal is configured but cannot work (its client certificate files).
    #[error(transparent)]
    PeerUnseal(#[from] crate::peers::PeerUnsealError),
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
        // Only refused certificates and protocol errors count: a handshake that is slow or
        // abandoned (`timeout`, `closed`) costs its sender a connection, and counting it would
        // slow down every client behind the same address, however well it behaves.
        if !matches!(reason, "timeout" | "closed") {
            self.throttle.failed(peer.ip());
        }
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
/// waits 100 ms, doubling per further failure, up to `handshake_failure_max_delay`. And bounds
/// the unfinished handshakes of an address: beyond [`MAX_UNFINISHED_HANDSHAKES`], a new one
/// drops that address's oldest, so slow handshakes hurt themselves, not the clients behind the
/// same address that complete theirs.
struct HandshakeThrottle {
    allowed: u32,
    max_delay: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Each address's unfinished handshakes, oldest first.
    unfinished: Mutex<HashMap<IpAddr, VecDeque<Pending>>>,
    next_id: AtomicU64,
}

const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
const THROTTLE_MAX_ADDRESSES: usize = 100_000;
/// Handshakes one address may have under way at once (docs/configuration.md).
const MAX_UNFINISHED_HANDSHAKES: usize = 256;

/// A handshake under way as the throttle keeps it: its id and what tells it to give up.
type Pending = (u64, Arc<Notify>);

/// One handshake under way, from [`HandshakeThrottle::begin`]; forgotten when dropped.
struct Unfinished<'a> {
    throttle: &'a HandshakeThrottle,
    ip: IpAddr,
    id: u64,
    /// Notified when newer handshakes from the address push this one out.
    superseded: Arc<Notify>,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let mut unfinished = self
            .throttle
            .unfinished
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(list) = unfinished.get_mut(&self.ip) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                unfinished.remove(&self.ip);
            }
        }
    }
}

impl HandshakeThrottle {
    fn new(allowed: u32, max_delay: Duration) -> HandshakeThrottle {
        HandshakeThrottle {
            allowed,
            max_delay,
            failures: Mutex::default(),
            unfinished: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Registers a handshake from `ip`; if the address now has more than
    /// [`MAX_UNFINISHED_HANDSHAKES`], its oldest is told to give up.
    fn begin(&self, ip: IpAddr) -> Unfinished<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let superseded = Arc::new(Notify::new());
        let mut unfinished = self.unfinished.lock().unwrap_or_else(|p| p.into_inner());
        let list = unfinished.entry(ip).or_default();
        list.push_back((id, superseded.clone()));
        if list.len() > MAX_UNFINISHED_HANDSHAKES {
            if let Some((_, oldest)) = list.pop_front() {
                // Stored if the handshake is not waiting yet: it gives up when it does.
                oldest.notify_one();
            }
        }
        Unfinished {
            throttle: self,
            ip,
            id,
            superseded,
        }
    }

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
    /// Asks the configured peers for the root key while sealed (`node.peers`).
    peer_unseal: Option<tokio::task::JoinHandle<()>>,
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
        if let Some(task) = &self.peer_unseal {
            task.abort();
        }
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

/// The configured store: sled, or PostgreSQL (connected, its schema migrated).
pub enum OpenedStore {
    /// sled on local disk.
    Sled(Arc<SledStore>),
    /// PostgreSQL, shared with other nodes.
    Postgres(Arc<tresor_postgres::PgStore>),
}

impl OpenedStore {
    /// The store, as the vault uses it.
    pub fn as_store(&self) -> Arc<dyn Store> {
        match self {
            OpenedStore::Sled(store) => store.clone(),
            OpenedStore::Postgres(store) => store.clone(),
        }
    }
}

/// Opens the configured store (sled, or PostgreSQL: connecting and migrating its schema).
pub fn open_store(config: &Config) -> Result<OpenedStore, ServerError> {
    Ok(match config.storage.backend {
        Backend::Sled => OpenedStore::Sled(Arc::new(
            SledStore::open(&config.storage.path).map_err(Error::from)?,
        )),
        Backend::Postgresql => {
            let options = config.storage.postgres_options().ok_or_else(|| {
                tresor_postgres::PgError::Options(
                    "`storage.url` and `storage.node_id` are required".into(),
                )
            })?;
            OpenedStore::Postgres(Arc::new(tresor_postgres::PgStore::open(&options)?))
        }
    })
}

/// Opens the configured store and vault (sealed).
pub fn open_vault(config: &Config) -> Result<Vault, ServerError> {
    open_vault_on(config, &open_store(config)?)
}

fn open_vault_on(config: &Config, store: &OpenedStore) -> Result<Vault, ServerError> {
    let store = store.as_store();
    let node = crate::node::load_or_create(&config.node.identity_key)?;
    let mut options =
        VaultOptions::new(config.environment.clone()).with_node_identity(Arc::new(node));
    options.unseal_timeout = config.unseal.timeout;
    Ok(Vault::open(store, options)?)
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
    // The handshake checks the chain only: a certificate that chains to the client CA but names
    // no usable principal completes it and is then answered 403 saying what is wrong with it
    // (`refuse_unidentified`). Refused in the handshake instead, the client learns nothing
    // (TLS 1.3 clients see their request go unanswered: "Empty reply").
    let tls = ServerTls::load(&ServerTlsFiles {
        cert: config.tls.cert.clone(),
        key: config.tls.key.clone(),
        client_ca: config.tls.client_ca.clone(),
        crls: config.tls.crls.clone(),
    })?;
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
    launch(config, vault, prepared, None)
}

/// Checks everything that can be checked without writing (configuration, TLS files, policies,
/// the listen address), then opens the store and the vault (sealed) and starts serving: what
/// `tresor server` does. A start that fails leaves no new store behind: if the store was
/// created by this call and the audit log then cannot be opened, the store is removed again,
/// so a corrected configuration starts from the same state.
pub async fn open_and_start(config: Config) -> Result<ServerHandle, ServerError> {
    let prepared = prepare(&config).await?;
    let before = match config.storage.backend {
        Backend::Sled => StoreDir::note(&config.storage.path),
        Backend::Postgresql => StoreDir::Used,
    };
    let started = open_store(&config).and_then(|store| {
        let vault = open_vault_on(&config, &store)?;
        let coherence = match &store {
            OpenedStore::Postgres(pg) => Some(crate::coherence::Coherence::start(
                pg,
                &vault,
                Duration::from_secs(config.storage.max_staleness),
                Duration::from_secs(config.storage.job_lease),
            )?),
            OpenedStore::Sled(_) => None,
        };
        launch(config, vault, prepared, coherence)
    });
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
fn launch(
    config: Config,
    vault: Vault,
    prepared: Prepared,
    coherence: Option<Arc<crate::coherence::Coherence>>,
) -> Result<ServerHandle, ServerError> {
    let Prepared {
        tls,
        policies,
        listener,
        local_addr,
    } = prepared;
    let audit = match &config.audit {
        AuditSetting::File(file) => Some(Arc::new(AuditLog::open(crate::audit::AuditConfig {
            // Several nodes on one database: each names itself in its own log.
            node_id: config.storage.node_id.clone(),
            ..file.to_audit_config()
        })?)),
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
        api: Arc::new(
            ApiState::new(
                Services::new(vault, config.approvals.ttl),
                policies,
                config.limits.clone(),
                audit,
            )
            .with_coherence(coherence),
        ),
        _anchor: anchor,
        tls,
        connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        throttle: HandshakeThrottle::new(
            config.limits.handshake_failures_allowed,
            Duration::from_secs(config.limits.handshake_failure_max_delay),
        ),
        config,
    });
    let peers = peer_clients(&shared.config)?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let accept_loop = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
    tracing::info!(address = %local_addr, "listening");
    record_policy_load(&shared.api, &shared.config.policies.dir, &Ok(()));
    log_seal_state(&shared.api.services.vault);
    let peer_unseal = peers.map(|peers| tokio::spawn(unseal_from_peers(shared.api.clone(), peers)));
    Ok(ServerHandle {
        local_addr,
        shared,
        shutdown,
        accept_loop,
        peer_unseal,
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
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let limits = &shared.config.limits;
    let delay = shared.throttle.delay_for(peer.ip());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let acceptor = shared.tls.acceptor();
    let unfinished = shared.throttle.begin(peer.ip());
    let accepted = tokio::select! {
        accepted = tokio::time::timeout(
            Duration::from_secs(limits.handshake_timeout),
            acceptor.accept(stream),
        ) => accepted,
        () = unfinished.superseded.notified() => {
            drop(unfinished);
            return shared.handshake_failed(
                peer,
                "timeout",
                &format!("dropped unfinished: the address began {MAX_UNFINISHED_HANDSHAKES} newer handshakes"),
            );
        }
    };
    drop(unfinished);
    let tls_stream = match accepted {
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
            Err(e) => {
                let reason = e.to_string();
                shared.handshake_failed(
                    peer,
                    "no_principal",
                    &format!("client certificate refused: {reason}"),
                );
                return refuse_unidentified(tls_stream, reason, limits).await;
            }
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
    // The timeouts are watched by a task of their own: a timer polled with the connection would
    // be polled again at every wake-up of the connection, that is several times per request.
    let (close, mut closing) = watch::channel(Close::Open);
    let watchdog = tokio::spawn(watch_connection(
        shared.clone(),
        activity,
        shutdown,
        peer,
        close,
    ));
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                break;
            }
            changed = closing.changed() => {
                // A value sent before the watchdog ended still arrives first; the channel is
                // closed without one only if the watchdog panicked: the connection goes on,
                // without spinning on the closed channel.
                if changed.is_err() {
                    if let Err(e) = connection.as_mut().await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                // The watchdog asks each at most once.
                match *closing.borrow_and_update() {
                    Close::Drop => break,
                    Close::Graceful => connection.as_mut().graceful_shutdown(),
                    Close::Open => {}
                }
            }
        }
    }
    watchdog.abort();
    shared.api.metrics.connection_closed();
}

/// What a connection's watchdog asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Open,
    /// Finish the request in flight, then close (shutdown, or idle for `idle_timeout`).
    Graceful,
    /// Close now, without an answer (a stalled request head, or a client that would not close).
    Drop,
}

/// Watches one connection's timeouts and the server's shutdown, twice a second, and says
/// when the connection must close.
async fn watch_connection(
    shared: Arc<Shared>,
    activity: Arc<Activity>,
    mut shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    close: watch::Sender<Close>,
) {
    let limits = &shared.config.limits;
    let idle_timeout = Duration::from_secs(limits.idle_timeout);
    let header_timeout = Duration::from_secs(limits.header_read_timeout);
    let mut idle_check = tokio::time::interval(Duration::from_millis(500));
    let mut closing = false;
    loop {
        tokio::select! {
            _ = shutdown.changed(), if !closing => {
                closing = true;
                let _ = close.send(Close::Graceful);
            }
            _ = idle_check.tick() => {
                if activity.head_for().is_some_and(|t| t >= header_timeout) {
                    // Dropped without an answer, as hyper does: nothing of a request arrived.
                    tracing::info!(peer = %peer, limit = limits.header_read_timeout, "request headers not received in time (limits.header_read_timeout); closing");
                    let _ = close.send(Close::Drop);
                    return;
                }
                let idle = activity.idle_for();
                if !closing && idle >= idle_timeout {
                    closing = true;
                    let _ = close.send(Close::Graceful);
                } else if closing && idle >= idle_timeout + header_timeout {
                    // A graceful close needs the client: HTTP/2 waits for the acknowledgement
                    // of its GOAWAY's ping, and for any header block the client has begun. An
                    // idle client that withholds them would keep the connection (and its slot
                    // of max_connections) for good; it gets header_read_timeout, then is dropped.
                    tracing::info!(peer = %peer, "idle connection did not close when asked; dropping it");
                    let _ = close.send(Close::Drop);
                    return;
                }
            }
        }
    }
}

/// Serves a connection whose certificate names no usable identity (see
/// [`crate::api::refuse_unidentified`]): every request gets the 403 saying why, rather than a
/// connection closed without a word, which clients report as an empty reply. One HTTP/1.1
/// request; over HTTP/2, whatever arrives within `limits.header_read_timeout`. Then it closes.
async fn refuse_unidentified(
    tls_stream: tokio_rustls::server::TlsStream<TcpStream>,
    reason: String,
    limits: &crate::config::Limits,
) {
    let http1 = tls_stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice());
    let reason = Arc::new(reason);
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let head = request.method() == hyper::Method::HEAD;
        let response = crate::api::refuse_unidentified(&reason, head, http1);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(16);
    let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
    let _ = tokio::time::timeout(Duration::from_secs(limits.header_read_timeout), connection).await;
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

/// The clients for `node.peers`, if peer unseal is configured.
fn peer_clients(config: &Config) -> Result<Option<crate::peers::Peers>, ServerError> {
    let node = &config.node;
    let (Some(cert), Some(key)) = (&node.peer_cert, &node.peer_key) else {
        return Ok(None);
    };
    if node.peers.is_empty() {
        return Ok(None);
    }
    let ca = node.peer_ca.as_ref().unwrap_or(&config.tls.client_ca);
    Ok(Some(crate::peers::Peers::new(&node.peers, ca, cert, key)?))
}

/// How often a sealed node with `node.peers` asks them for the root key.
const PEER_UNSEAL_EVERY: Duration = Duration::from_secs(1);

/// Peer unseal (docs/deployment.md, "Unsealing"): while this node is initialised and sealed
/// (after a restart, or after sealing itself because another node rotated the root), it asks its
/// configured peers for the root key, one after the other, every second. An unseal is audited as
/// `unsealed`, naming the peer; a refusal is logged and audited (`peer-unseal-refused`) when its
/// reason changes, not every second.
async fn unseal_from_peers(api: Arc<ApiState>, peers: crate::peers::Peers) {
    let mut said: HashMap<usize, String> = HashMap::new();
    let mut tick = tokio::time::interval(PEER_UNSEAL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let vault = &api.services.vault;
        if !vault.is_sealed() {
            said.clear();
            continue;
        }
        let status = {
            let vault = vault.clone();
            tokio::task::spawn_blocking(move || vault.seal_status()).await
        };
        if !matches!(status, Ok(Ok(ref s)) if s.initialized) {
            continue;
        }
        let configured: Vec<crate::config::PeerConfig> = peers.configured().cloned().collect();
        for (index, peer) in configured.iter().enumerate() {
            match peers.ask(index, vault).await {
                Ok(progress) => {
                    if progress.sealed {
                        continue;
                    }
                    let reason = format!(
                        "by peer node {} ({}); store generation {}",
                        peer.fingerprint,
                        peer.address,
                        progress
                            .store
                            .map_or_else(|| "unknown".to_owned(), |s| s.generation.to_string())
                    );
                    tracing::info!(peer = %peer.address, fingerprint = %peer.fingerprint, "unsealed by a peer");
                    let event = AuditEvent {
                        reason,
                        store: progress.store,
                        ..crate::api::server_line("unsealed", "-")
                    };
                    crate::api::record_server_line(&api, &event);
                    said.clear();
                    break;
                }
                Err(reason) => {
                    if said.get(&index) != Some(&reason) {
                        tracing::warn!(peer = %peer.address, "peer unseal: {reason}");
                        record_server_event(
                            &api,
                            "peer-unseal-refused",
                            Outcome::Error,
                            reason.clone(),
                        );
                        said.insert(index, reason);
                    }
                }
            }
        }
    }
}

/// Runs `work` as a background job: fenced by the job lease on PostgreSQL (where it runs only
/// on the node holding it: `None` elsewhere), as it is on sled.
fn as_job<T>(api: &ApiState, work: impl FnOnce() -> T) -> Option<T> {
    match &api.coherence {
        Some(coherence) => {
            let epoch = coherence.job_epoch()?;
            Some(coherence.fenced(epoch, work))
        }
        None => Some(work()),
    }
}

/// Rotates due keys, destroys what a deletion window has run out on and re-signs pin manifests
/// past half their freshness, once a minute while unsealed (on PostgreSQL: on the one node
/// holding the job lease, each commit fenced by it). Each change is audited like a request.
async fn background(api: Arc<ApiState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if api.services.vault.is_sealed() {
            continue;
        }
        if api
            .coherence
            .as_ref()
            .is_some_and(|c| c.job_epoch().is_none())
        {
            continue;
        }
        let task_api = api.clone();
        match tokio::task::spawn_blocking(move || {
            as_job(&task_api, || rotate_due_keys(&task_api)).unwrap_or(Ok(Vec::new()))
        })
        .await
        {
            Ok(Ok(_)) | Ok(Err(Error::Sealed)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "auto-rotation failed"),
            Err(e) => tracing::error!(error = %e, "auto-rotation task panicked"),
        }
        let task_api = api.clone();
        match tokio::task::spawn_blocking(move || {
            as_job(&task_api, || {
                crate::scheduled_deletion::destroy_due_deletions(&task_api)
            })
            .unwrap_or(Ok(Default::default()))
        })
        .await
        {
            Ok(Ok(_)) | Ok(Err(Error::Sealed)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled destruction failed"),
            Err(e) => tracing::error!(error = %e, "scheduled destruction task panicked"),
        }
        let task_api = api.clone();
        match tokio::task::spawn_blocking(move || {
            as_job(&task_api, || reissue_due_pin_manifests(&task_api)).unwrap_or(Ok(()))
        })
        .await
        {
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

/// Writes a line the server makes about itself (principal `tresor:server`): what changed the
/// vault's state or its rules without a request doing it.
fn record_server_event(api: &ApiState, operation: &str, outcome: Outcome, reason: String) {
    let event = AuditEvent {
        outcome: Some(outcome),
        reason,
        ..crate::api::server_line(operation, "-")
    };
    crate::api::record_server_line(api, &event);
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

/// An audit line for `operation` done by the server itself (no caller, no source address).
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn told_to_give_up(unfinished: &Unfinished<'_>) -> bool {
        tokio::time::timeout(Duration::from_millis(1), unfinished.superseded.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_address_beyond_its_unfinished_handshakes_loses_its_oldest() {
        let throttle = HandshakeThrottle::new(10, Duration::from_secs(1));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let mut held: Vec<Unfinished<'_>> = (0..MAX_UNFINISHED_HANDSHAKES)
            .map(|_| throttle.begin(ip))
            .collect();
        let elsewhere = throttle.begin(other);
        for unfinished in &held {
            assert!(!told_to_give_up(unfinished).await);
        }
        // One more from the same address: the oldest gives up, nobody else.
        held.push(throttle.begin(ip));
        assert!(told_to_give_up(&held[0]).await);
        for unfinished in &held[1..] {
            assert!(!told_to_give_up(unfinished).await);
        }
        assert!(!told_to_give_up(&elsewhere).await);
        // Finished handshakes make room again.
        held.drain(..10);
        for _ in 0..9 {
            held.push(throttle.begin(ip));
        }
        for unfinished in &held {
            assert!(!told_to_give_up(unfinished).await);
        }
        drop(held);
        drop(elsewhere);
        assert!(throttle.unfinished.lock().unwrap().is_empty());
    }
}
