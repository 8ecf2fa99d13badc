//! A custody test server: a real server over mutual TLS on loopback and a real sled store in a
//! temporary directory, initialised through the API with k-of-n custodians of the test's
//! choosing, on a manual clock, and restartable on the same data directory (a restarted vault
//! comes back sealed). Also: an independent decoder for custodian identity files and sealed
//! shares (docs/format.md §7, §9), so a test knows a share's bytes without any library call
//! that reveals them, and a store wrapper that pauses the vault at a chosen moment.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tresor_client::{Client, ClientSettings, CryptoOptions};
use tresor_core::ManualClock;
use tresor_core::SledStore;
use tresor_core::Store;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_core::store::{Batch, StoreError};
use tresor_crypto::identity::CustodianIdentity;
use tresor_server::config::Config;
use tresor_server::server::ServerHandle;
use tresor_server::tls::pki::DevCa;
use tresor_wire::approvals::{Approval, ApprovalOutcome};
use tresor_wire::custody::UnsealProgress;

use super::server::{ADMIN, ADMIN_POLICY, ClientFiles, b64, unb64, write, write_client_files};

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Where every manual clock starts (2026-01-01T00:00:00Z).
pub const EPOCH: u64 = 1_767_225_600;

/// What to start.
#[derive(Debug, Clone)]
pub struct CustodyOptions {
    /// Custodian names, one share each (n).
    pub custodians: Vec<String>,
    /// Shares needed to unseal (k).
    pub threshold: u8,
    /// `[unseal] timeout`, seconds.
    pub unseal_timeout: u64,
    /// `[approvals] ttl`, seconds.
    pub approval_ttl: u64,
    /// Unseal with the first k custodians after init.
    pub unseal: bool,
    /// Initialise through the API at start (otherwise the test does, e.g. with the CLI).
    pub init: bool,
    /// Bind each custodian to its own principal ([`custodian_principal`]), as
    /// `tresor custodian keygen --principal` does.
    pub bound: bool,
}

/// The principal custodian `name` is bound to under [`CustodyOptions::bound`].
pub fn custodian_principal(name: &str) -> String {
    format!("spiffe://test.tresor.local/custodians/{name}")
}

impl CustodyOptions {
    /// `k`-of-`n` custodians named `c1`…`cn`, left sealed after init.
    pub fn k_of_n(k: u8, n: usize) -> Self {
        CustodyOptions {
            custodians: (1..=n).map(|i| format!("c{i}")).collect(),
            threshold: k,
            unseal_timeout: 600,
            approval_ttl: 3600,
            unseal: false,
            init: true,
            bound: false,
        }
    }

    /// Binds every custodian to its own principal ([`custodian_principal`]).
    pub fn bound(mut self) -> Self {
        self.bound = true;
        self
    }

    /// Leaves the vault uninitialised.
    pub fn uninitialised(mut self) -> Self {
        self.init = false;
        self
    }

    /// Unseals with the first k custodians after init.
    pub fn unsealed(mut self) -> Self {
        self.unseal = true;
        self
    }

    pub fn unseal_timeout(mut self, seconds: u64) -> Self {
        self.unseal_timeout = seconds;
        self
    }

    pub fn approval_ttl(mut self, seconds: u64) -> Self {
        self.approval_ttl = seconds;
        self
    }
}

/// Wraps the sled store the vault is opened on (see [`PausingStore`]).
pub type StoreWrapper = Arc<dyn Fn(Arc<dyn Store>) -> Arc<dyn Store> + Send + Sync>;

/// A running custody server. Clients made before a [`CustodyServer::restart`] point at the old
/// port; make new ones.
pub struct CustodyServer {
    pub dir: tempfile::TempDir,
    pub ca: DevCa,
    pub clock: Arc<ManualClock>,
    pub custodians: Vec<CustodianIdentity>,
    pub options: CustodyOptions,
    handle: Option<ServerHandle>,
    wrapper: Option<StoreWrapper>,
    /// The store the current run's vault is on (under any wrapper).
    store: Option<Arc<dyn Store>>,
    /// `https://127.0.0.1:<port>` of the current run.
    pub url: String,
    pub admin_files: ClientFiles,
}

impl CustodyServer {
    /// Writes certificates, policy and config, starts the server and initialises it over the
    /// API with `options.custodians` (k = `options.threshold`).
    pub async fn start(options: CustodyOptions) -> CustodyServer {
        Self::start_wrapped(options, None).await
    }

    /// As [`CustodyServer::start`], with the vault's store wrapped by `wrapper` (every run).
    pub async fn start_wrapped(
        options: CustodyOptions,
        wrapper: Option<StoreWrapper>,
    ) -> CustodyServer {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let ca = DevCa::generate("Tresor custody test CA").unwrap();
        write(&path("ca.pem"), ca.cert_pem());
        let server_cert = ca.issue_server(&["localhost", "127.0.0.1"], DAY).unwrap();
        write(&path("server.pem"), &server_cert.cert_pem);
        write(&path("server-key.pem"), &server_cert.key_pem);
        std::fs::create_dir(path("policies")).unwrap();
        write(&path("policies").join("admin.toml"), ADMIN_POLICY);
        if options.bound {
            write(
                &path("policies").join("custodians.toml"),
                format!(
                    "[[operator]]\nprincipals = [\"{}\"]\noperations = [\"unseal\", \
                     \"approval-list\", \"approval-approve\", \"approval-reject\", \
                     \"approval-cancel\", \"rotate-root\", \"rekey\"]\n",
                    custodian_principal("*")
                ),
            );
        }
        let admin = ca.issue_client(ADMIN, DAY).unwrap();
        let admin_files = ClientFiles {
            cert: path("admin.pem"),
            key: path("admin-key.pem"),
        };
        write(&admin_files.cert, &admin.cert_pem);
        write(&admin_files.key, &admin.key_pem);
        let custodians: Vec<CustodianIdentity> = options
            .custodians
            .iter()
            .map(|name| match options.bound {
                true => CustodianIdentity::generate_for(name, &custodian_principal(name)).unwrap(),
                false => CustodianIdentity::generate(name).unwrap(),
            })
            .collect();
        let mut server = CustodyServer {
            dir,
            ca,
            clock: Arc::new(ManualClock::new(EPOCH)),
            custodians,
            options,
            handle: None,
            wrapper,
            store: None,
            url: String::new(),
            admin_files,
        };
        server.run().await;
        if !server.options.init {
            return server;
        }
        let publics: Vec<_> = server
            .custodians
            .iter()
            .map(|c| c.public().clone())
            .collect();
        let status = server
            .admin()
            .init(&publics, server.options.threshold, None)
            .await
            .unwrap();
        assert!(status.sealed, "init leaves the vault sealed");
        if server.options.unseal {
            server.unseal_all().await;
        }
        server
    }

    fn config(&self) -> Config {
        let text = format!(
            "listen = \"127.0.0.1:0\"\nenvironment = \"test\"\n\n[tls]\ncert = \"server.pem\"\n\
             key = \"server-key.pem\"\nclient_ca = \"ca.pem\"\n\n[storage]\npath = \"data\"\n\n\
             [policies]\ndir = \"policies\"\n\n[audit]\npath = \"audit.log\"\n\n\
             [unseal]\ntimeout = {}\n\n[approvals]\nttl = {}\n\n[log]\nlevel = \"warn\"\n",
            self.options.unseal_timeout, self.options.approval_ttl
        );
        Config::parse(&text, self.dir.path())
            .unwrap_or_else(|e| panic!("test config refused: {e}\n{text}"))
    }

    /// Opens the data directory and serves it (the vault starts sealed).
    async fn run(&mut self) {
        let config = self.config();
        let store: Arc<dyn Store> = Arc::new(open_sled(&config.storage.path));
        self.store = Some(store.clone());
        let store = match &self.wrapper {
            Some(wrap) => wrap(store),
            None => store,
        };
        let node = tresor_server::node::load_or_create(&self.path("node-identity.key")).unwrap();
        let mut options = VaultOptions::new("test")
            .with_clock(self.clock.clone())
            .with_node_identity(Arc::new(node));
        options.unseal_timeout = self.options.unseal_timeout;
        let vault = Vault::open(store, options).unwrap();
        let handle = tresor_server::server::start(config, vault).await.unwrap();
        self.url = format!("https://127.0.0.1:{}", handle.local_addr().port());
        self.handle = Some(handle);
    }

    /// The store of the current run, for a test that plays someone who can write it.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone().expect("running")
    }

    /// The raw stored value at `path`.
    pub fn vault_store_raw(&self, path: &str) -> Option<Vec<u8>> {
        self.store().get(path).unwrap()
    }

    /// Custodian `i` signs `approval` over the API as the admin; the status and body.
    pub async fn sign_raw(&self, approval: &Approval, i: usize) -> (hyper::StatusCode, Value) {
        let identity = &self.custodians[i];
        self.admin()
            .raw(
                hyper::Method::POST,
                &format!("sys/approvals/{}/approve", approval.id),
                Some(&serde_json::json!({
                    "custodian": identity.name(),
                    "signature": approval.sign(identity),
                })),
            )
            .await
            .unwrap()
    }

    /// Stops the server (which seals the vault and drops the store) and starts a new one on
    /// the same data directory, as a process restart would.
    pub async fn restart(&mut self) {
        self.restart_after(|_| {}).await;
    }

    /// As [`CustodyServer::restart`], doing `between` to the server's directory while it is
    /// down (as someone with access to the disk would).
    pub async fn restart_after(&mut self, between: impl FnOnce(&Path)) {
        self.handle.take().expect("running").shutdown().await;
        self.store = None;
        between(self.dir.path());
        self.run().await;
    }

    /// Writes (or replaces) a policy file and reloads the policies, as SIGHUP does.
    pub fn write_policy(&self, file: &str, toml: &str) {
        write(&self.path("policies").join(file), toml);
        self.handle
            .as_ref()
            .expect("running")
            .reload()
            .policies
            .expect("the policies load");
    }

    pub fn vault(&self) -> &Vault {
        self.handle.as_ref().expect("running").vault()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client for `principal` (a fresh certificate from the test CA).
    pub fn client(&self, principal: &str) -> Client {
        let cert = self.ca.issue_client(principal, DAY).unwrap();
        let files = write_client_files(self.dir.path(), principal, &cert);
        self.client_at(&self.url, &files)
    }

    /// A client with `files` talking to `url` (the server, or a proxy in front of it).
    pub fn client_at(&self, url: &str, files: &ClientFiles) -> Client {
        Client::new(&ClientSettings {
            addr: url.to_owned(),
            ca_cert: self.path("ca.pem"),
            client_cert: files.cert.clone(),
            client_key: files.key.clone(),
        })
        .unwrap()
    }

    /// A client with custodian `i`'s own certificate (its [`custodian_principal`]).
    pub fn custodian_client(&self, i: usize) -> Client {
        self.client(&custodian_principal(self.custodians[i].name()))
    }

    /// The audit log's lines so far, parsed.
    pub fn audit_entries(&self) -> Vec<serde_json::Value> {
        super::audit::entries(&self.path("audit.log"))
    }

    pub fn admin(&self) -> Client {
        self.client_at(&self.url, &self.admin_files)
    }

    /// The node fingerprints a custodian of this server pins: this server's own node key.
    pub fn pinned(&self) -> Vec<String> {
        vec![
            tresor_server::node::load_or_create(&self.path("node-identity.key"))
                .unwrap()
                .verifying_key()
                .fingerprint(),
        ]
    }

    /// The client that acts for custodian `i`: its own certificate when custodians are bound,
    /// else the admin's.
    pub fn acting_for(&self, i: usize) -> Client {
        match self.options.bound {
            true => self.custodian_client(i),
            false => self.admin(),
        }
    }

    /// Custodian `i` (0-based).
    pub fn custodian(&self, i: usize) -> &CustodianIdentity {
        &self.custodians[i]
    }

    /// Custodian `i` submits their share over the API.
    pub async fn unseal_by(&self, i: usize) -> UnsealProgress {
        self.acting_for(i)
            .unseal_with(&self.custodians[i], &self.pinned())
            .await
            .unwrap_or_else(|e| panic!("custodian {i} could not unseal: {e}"))
    }

    /// The first k custodians unseal.
    pub async fn unseal_all(&self) {
        for i in 0..usize::from(self.options.threshold) {
            let progress = self.unseal_by(i).await;
            assert_eq!(
                progress.sealed,
                i + 1 < usize::from(self.options.threshold),
                "{progress:?}"
            );
        }
    }

    /// Custodian `i`'s share submission as the client would send it (the share opened here and
    /// sealed to the vault's current unseal key), for replaying.
    pub async fn submission(&self, i: usize) -> Value {
        let admin = self.admin();
        let status = admin.seal_status().await.unwrap();
        let identity = &self.custodians[i];
        let sealed: tresor_wire::custody::SealedShare = admin
            .data(
                hyper::Method::GET,
                &format!("sys/unseal-share/{}", identity.name()),
                None,
            )
            .await
            .unwrap();
        let share = sealed.open(identity).unwrap();
        let key: [u8; 32] = unb64(status["unseal_key"].as_str().unwrap())
            .try_into()
            .unwrap();
        let boxed = share
            .seal_for_submission(
                status["cluster_id"].as_str().unwrap(),
                &key,
                identity.name(),
            )
            .unwrap();
        serde_json::json!({ "custodian": identity.name(), "sealed_share": b64(boxed) })
    }

    /// POSTs an unseal submission: status and body.
    pub async fn submit(&self, body: &Value) -> (hyper::StatusCode, Value) {
        self.admin()
            .raw(hyper::Method::POST, "sys/unseal", Some(body))
            .await
            .unwrap()
    }

    /// Who has submitted in the current round, per `sys/seal-status`.
    pub async fn submitted(&self) -> Vec<String> {
        serde_json::from_value(self.seal_status().await["submitted"].clone()).unwrap()
    }

    /// `sys/seal-status` as JSON.
    pub async fn seal_status(&self) -> Value {
        self.admin().seal_status().await.unwrap()
    }

    /// The first k custodians sign approval `id` (fetched fresh); the last outcome.
    pub async fn approve_by(&self, id: &str, custodians: &[usize]) -> ApprovalOutcome {
        let mut last = None;
        for &i in custodians {
            let approval: Approval = self.admin().approval(id).await.unwrap();
            last = Some(
                self.acting_for(i)
                    .approve_with(&approval, &self.custodians[i])
                    .await
                    .unwrap_or_else(|e| panic!("custodian {i} could not approve {id}: {e}")),
            );
        }
        last.expect("at least one custodian")
    }

    /// Re-reads the policy directory, as SIGHUP does.
    pub fn reload_policies(&self) -> tresor_server::server::ReloadReport {
        self.handle.as_ref().expect("running").reload()
    }

    /// Stops the server.
    pub async fn shutdown(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

/// Opens sled in `path`, waiting (up to 10 s) for a previous run in this process to let go of it.
fn open_sled(path: &Path) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open(path) {
            Ok(store) => return store,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot open the store in {}: {e}", path.display()),
        }
    }
}

/// A store that, once armed, stops the first `scan_prefix("")` (only a root rotation scans the
/// whole store) until released, so a test can act while a rotation is under way.
pub struct PausingStore {
    inner: Arc<dyn Store>,
    pub armed: AtomicBool,
    pub paused: AtomicBool,
    pub released: AtomicBool,
}

impl PausingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        PausingStore {
            inner,
            armed: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            released: AtomicBool::new(false),
        }
    }

    /// Waits (up to 10 s) until a rotation has reached the pause.
    pub async fn wait_paused(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.paused.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the rotation never reached the pause"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Store for PausingStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if prefix.is_empty() && self.armed.swap(false, Ordering::SeqCst) {
            self.paused.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.released.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.inner.scan_prefix(prefix)
    }

    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.inner.commit(batch)
    }

    fn purge_stale(&self) -> Result<(), StoreError> {
        self.inner.purge_stale()
    }
}

/// Opens a `SealedShare` (as served at `sys/unseal-share/:custodian`) with the identity file
/// `identity_json` and its passphrase, by the formats in docs/format.md alone (§9 identity file,
/// §7 sealed box): the 33 share bytes `index ‖ value`. Independent of the library, so a test can
/// look for the share where it must not be.
pub fn open_share_independently(identity_json: &str, passphrase: &[u8], sealed: &Value) -> Vec<u8> {
    let mut context = lp(&[sealed["vault_id"].as_str().unwrap().as_bytes()]);
    context.extend_from_slice(&(sealed["root_generation"].as_u64().unwrap() as u32).to_be_bytes());
    context.extend_from_slice(&lp(&[&[sealed["index"].as_u64().unwrap() as u8]]));
    let share = open_box_independently(
        identity_json,
        passphrase,
        "tresor-root-share-v1",
        &context,
        &unb64(sealed["sealed"].as_str().unwrap()),
    );
    assert_eq!(share.len(), 33);
    share
}

/// Opens a custodian's share of level-3 tenant `tenant`'s custody key (the
/// `sealed_custody_key` served at `sys/tenants/:tenant/custody/:custodian`) as
/// [`open_share_independently`] does a root share: its 33 bytes (index, then value).
pub fn open_custody_share_independently(
    identity_json: &str,
    passphrase: &[u8],
    vault_id: &str,
    tenant: &str,
    sealed_b64: &str,
) -> Vec<u8> {
    let key = open_box_independently(
        identity_json,
        passphrase,
        "tresor-tenant-custody-share-v1",
        &lp(&[vault_id.as_bytes(), tenant.as_bytes()]),
        &unb64(sealed_b64),
    );
    assert_eq!(key.len(), 33);
    key
}

/// Opens a sealed box (docs/format.md §7) addressed to the identity in `identity_json`.
fn open_box_independently(
    identity_json: &str,
    passphrase: &[u8],
    purpose: &str,
    context: &[u8],
    boxed: &[u8],
) -> Vec<u8> {
    let file: Value = serde_json::from_str(identity_json).unwrap();
    let kdf = &file["kdf"];
    assert_eq!(kdf["algorithm"], "argon2id");
    let params = argon2::Params::new(
        kdf["memory_kib"].as_u64().unwrap() as u32,
        kdf["iterations"].as_u64().unwrap() as u32,
        kdf["parallelism"].as_u64().unwrap() as u32,
        Some(32),
    )
    .unwrap();
    let mut key = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, &unb64(kdf["salt"].as_str().unwrap()), &mut key)
        .unwrap();
    let public = &file["public"];
    let aad = lp(&[
        b"tresor-custodian-identity-v1",
        public["name"].as_str().unwrap().as_bytes(),
        &unb64(public["x25519"].as_str().unwrap()),
        &unb64(public["ed25519"].as_str().unwrap()),
    ]);
    let secret = unb64(file["secret"].as_str().unwrap());
    let secrets = aes_open(&key, &aad, &secret).expect("the identity file opens");
    let x25519: [u8; 32] = secrets[..32].try_into().unwrap();
    let recipient_public: [u8; 32] = unb64(public["x25519"].as_str().unwrap())
        .try_into()
        .unwrap();

    assert_eq!(boxed[0], 1, "sealed box version");
    let ephemeral: [u8; 32] = boxed[1..33].try_into().unwrap();
    let shared = x25519_dalek::StaticSecret::from(x25519)
        .diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral));
    let mut salt = ephemeral.to_vec();
    salt.extend_from_slice(&recipient_public);
    let mut box_key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared.as_bytes())
        .expand(
            &lp(&[b"tresor-sealed-box-v1", purpose.as_bytes()]),
            &mut box_key,
        )
        .unwrap();
    let aad = lp(&[b"tresor-sealed-box-v1", purpose.as_bytes(), context]);
    aes_open(&box_key, &aad, &boxed[33..]).expect("the sealed box opens")
}

fn aes_open(key: &[u8; 32], aad: &[u8], message: &[u8]) -> Option<Vec<u8>> {
    use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
    let cipher = aes_gcm_siv::Aes256GcmSiv::new_from_slice(key).ok()?;
    let (nonce, rest) = message.split_at(12);
    cipher
        .decrypt(nonce.try_into().ok()?, Payload { msg: rest, aad })
        .ok()
}

/// LP(a) ‖ LP(b) ‖ …, LP = u32 big-endian length, then the bytes.
fn lp(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// The readable forms a secret could take in a request: raw, hex (both cases), and standard,
/// URL-safe and unpadded base64.
pub fn readable_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_vec(),
        hex.clone().into_bytes(),
        hex.to_ascii_uppercase().into_bytes(),
        b64(secret).into_bytes(),
        STANDARD_NO_PAD.encode(secret).into_bytes(),
        URL_SAFE.encode(secret).into_bytes(),
        URL_SAFE_NO_PAD.encode(secret).into_bytes(),
    ]
}

/// True if `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Creates tenant `tenant` (level 2) with key `k` and encrypts `n` distinct plaintexts under
/// it: (plaintext, ciphertext) pairs to check after a restart, rotation or rekey.
pub async fn encrypt_some(admin: &Client, tenant: &str, n: usize) -> Vec<(Vec<u8>, String)> {
    admin.create_tenant(tenant, 2, &[]).await.unwrap();
    admin
        .create_key(tenant, "k", &Default::default())
        .await
        .unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let plaintext = format!("secret number {i} of tenant {tenant}").into_bytes();
        let sealed = admin
            .encrypt(tenant, "k", &plaintext, &CryptoOptions::default())
            .await
            .unwrap();
        out.push((plaintext, sealed.ciphertext));
    }
    out
}

/// Every pair from [`encrypt_some`] still decrypts to its plaintext.
pub async fn assert_all_decrypt(admin: &Client, tenant: &str, data: &[(Vec<u8>, String)]) {
    for (plaintext, ciphertext) in data {
        let opened = admin
            .decrypt(tenant, "k", ciphertext, &CryptoOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{ciphertext} no longer decrypts: {e}"));
        assert_eq!(opened.as_slice(), plaintext.as_slice());
    }
}
