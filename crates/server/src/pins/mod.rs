//! The vault side of pinning (docs/pinning.md): apps, pinned keys and their private halves, the
//! manifest signing key chain, signing with invariants, the hash-chained log. A service beside
//! the vault core: it holds a [`SealedStore`] and nothing else of the vault. Everything is stored through the
//! barrier (sealed records), and every change is one atomic compare-and-swap commit: the app, its
//! new manifest, the log entry and the private keys created or destroyed land together or not
//! at all.

mod csr;

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tresor_core::store::{Batch, StoredBytes};
use tresor_core::{SealedRecords, SealedStore};
use tresor_crypto::hex;
use tresor_crypto::identity::CustodianPublicKey;
use tresor_crypto::sign::SigningKey;
use tresor_wire::pins::delivery::{DELIVERY_PURPOSE, DELIVERY_TYPE, delivery_context};
use tresor_wire::pins::keys::{KeyAlgorithm, PrivateKey};
use tresor_wire::pins::log::zero_hash;
use tresor_wire::pins::manifest::{
    self, ChainLink, Envelope, EnvelopeSignature, KEY_PAYLOAD_TYPE, MANIFEST_TYPE, Manifest,
    ManifestPin, PAYLOAD_TYPE, PinState, key_id, manifest_hash, pae,
};
use tresor_wire::pins::spki::{self, KeySource};
use tresor_wire::pins::{
    ActivationMode, AppSpec, DeliveredKey, ExportFormat, LogEntry, ManifestKeyInfo, PinApp,
    PinChange, PinError, PinKeyInfo, Rule, validate_app_name, validate_host,
};
use zeroize::Zeroizing;

/// Why a pinning operation failed: refused by pinning's own rules, or by the vault under it.
#[derive(Debug, thiserror::Error)]
pub enum PinsError {
    /// Pinning refused it (see [`PinError`]).
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The vault failed or refused (sealed, storage).
    #[error(transparent)]
    Vault(#[from] tresor_core::Error),
}

type Error = PinsError;

const APP_PREFIX: &str = "pins/app/";
const LOG_PREFIX: &str = "pins/log/";
const LOG_HEAD: &str = "pins/log-head";
const MANIFEST_KEY_PREFIX: &str = "pins/manifest-key/";
const MIN_FRESHNESS: u64 = 3600;
/// How long a manifest key signs (its links' `expires`), within the protocol's
/// `MAX_KEY_LIFETIME`.
const MANIFEST_KEY_LIFETIME: u64 = 365 * 86_400;
/// A manifest key this close to its expiry is replaced before it signs again.
const MANIFEST_KEY_RENEWAL: u64 = 60 * 86_400;

/// Serialises pinning changes within this process; the store's compare-and-swap covers the rest.
static PINS: Mutex<()> = Mutex::new(());

fn app_path(app: &str) -> String {
    format!("{APP_PREFIX}{app}")
}
fn manifest_path(app: &str, version: u64) -> String {
    format!("pins/manifest/{app}/{version:012}")
}
fn private_path(app: &str, kid: &str) -> String {
    format!("pins/private/{app}/{kid}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    kid: String,
    algorithm: String,
    /// `generated`, `certificate`, `csr` or `public-key`.
    origin: String,
    /// base64 DER SubjectPublicKeyInfo.
    spki: String,
    pin: String,
    state: PinState,
    created_at: u64,
    published_at: Option<u64>,
    activated_at: Option<u64>,
    activation: Option<ActivationMode>,
    ended_at: Option<u64>,
    private_key: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LastManifest {
    version: u64,
    issued_at: u64,
    hash: String,
    /// Keys active in it.
    active: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRecord {
    name: String,
    spec: AppSpec,
    created_at: u64,
    keys: Vec<KeyRecord>,
    manifest: Option<LastManifest>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateRecord {
    algorithm: KeyAlgorithm,
    pkcs8: StoredBytes,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestKeyRecord {
    generation: u32,
    secret: StoredBytes,
    link: ChainLink,
    created_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredManifest {
    /// The envelope JSON exactly as served.
    envelope: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogHead {
    seq: u64,
    hash: String,
}

impl KeyRecord {
    fn info(&self, lag: u64) -> PinKeyInfo {
        PinKeyInfo {
            kid: self.kid.clone(),
            algorithm: self.algorithm.clone(),
            origin: self.origin.clone(),
            pin: self.pin.clone(),
            state: self.state,
            created_at: self.created_at,
            published_at: self.published_at,
            activatable_at: match self.state {
                PinState::Staged => self.published_at.map(|p| p.saturating_add(lag)),
                _ => None,
            },
            activated_at: self.activated_at,
            activation: self.activation,
            ended_at: self.ended_at,
            private_key: self.private_key,
        }
    }
}

impl AppRecord {
    fn view(&self) -> PinApp {
        PinApp {
            name: self.name.clone(),
            spec: self.spec.clone(),
            keys: self
                .keys
                .iter()
                .map(|k| k.info(self.spec.max_update_lag))
                .collect(),
            manifest_version: self.manifest.as_ref().map(|m| m.version),
            manifest_issued_at: self.manifest.as_ref().map(|m| m.issued_at),
        }
    }

    fn key_mut(&mut self, kid: &str) -> Result<&mut KeyRecord, PinError> {
        let app = self.name.clone();
        self.keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .ok_or_else(|| PinError::KeyNotFound {
                app,
                kid: kid.chars().take(64).collect(),
            })
    }

    fn key(&self, kid: &str) -> Result<&KeyRecord, PinError> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| PinError::KeyNotFound {
                app: self.name.clone(),
                kid: kid.chars().take(64).collect(),
            })
    }

    fn info(&self, kid: &str) -> PinKeyInfo {
        self.key(kid)
            .map(|k| k.info(self.spec.max_update_lag))
            .expect("key present")
    }

    /// Adds a key; refuses one already pinned.
    fn add_key(
        &mut self,
        info: &spki::PublicKeyInfo,
        origin: &str,
        private: bool,
        now: u64,
    ) -> Result<String, PinError> {
        if let Some(existing) = self.keys.iter().find(|k| k.pin == info.pin) {
            return Err(PinError::KeyExists {
                app: self.name.clone(),
                kid: existing.kid.clone(),
            });
        }
        let kid = format!(
            "k-{}",
            &hex(&tresor_crypto::sha256(&[&info.spki_der]))[..12]
        );
        self.keys.push(KeyRecord {
            kid: kid.clone(),
            algorithm: info.algorithm.clone(),
            origin: origin.to_owned(),
            spki: STANDARD.encode(&info.spki_der),
            pin: info.pin.clone(),
            state: PinState::Staged,
            created_at: now,
            published_at: None,
            activated_at: None,
            activation: None,
            ended_at: None,
            private_key: private,
        });
        Ok(kid)
    }

    /// The invariants a manifest of this state must meet (docs/pinning.md, "Invariants checked
    /// before anything is signed").
    fn check(&self, now: u64) -> Result<(), PinError> {
        let accepted: Vec<&KeyRecord> = self.keys.iter().filter(|k| k.state.accepted()).collect();
        // Every pin applies to every host, so the count is the same for all of them.
        if let Some(host) = self.spec.hosts.first().filter(|_| accepted.len() < 2) {
            return Err(PinError::rule(
                Rule::TwoPinsPerHost,
                format!(
                    "host {} would have {} accepted pin(s){}; it needs at least 2",
                    host.name,
                    accepted.len(),
                    list(accepted.iter().map(|k| k.kid.as_str()))
                ),
            ));
        }
        if !accepted.iter().any(|k| k.state == PinState::Staged) {
            return Err(PinError::rule(
                Rule::BackupNotServing,
                format!(
                    "no accepted pin would be a backup that is not serving (all of{} serve); stage a backup first",
                    list(accepted.iter().map(|k| k.kid.as_str()))
                ),
            ));
        }
        let previous = self.manifest.as_ref();
        let was_active = |kid: &str| previous.is_some_and(|m| m.active.iter().any(|a| a == kid));
        for kid in previous.map(|m| m.active.as_slice()).unwrap_or_default() {
            let kept = self.keys.iter().any(|k| {
                &k.kid == kid
                    && matches!(
                        k.state,
                        PinState::Active | PinState::Retiring | PinState::Compromised
                    )
            });
            if !kept {
                return Err(PinError::rule(
                    Rule::ActiveNeverRemoved,
                    format!(
                        "active pin {kid} would leave the manifest; an active key goes through retiring first"
                    ),
                ));
            }
        }
        for key in self.keys.iter().filter(|k| k.state == PinState::Active) {
            if was_active(&key.kid) || key.activation != Some(ActivationMode::Lag) {
                continue;
            }
            let ready = key
                .published_at
                .map(|p| p.saturating_add(self.spec.max_update_lag));
            if ready.is_none_or(|r| now < r) {
                return Err(lag_refusal(key, self.spec.max_update_lag));
            }
        }
        Ok(())
    }
}

fn list<'a>(kids: impl Iterator<Item = &'a str>) -> String {
    let kids: Vec<&str> = kids.collect();
    if kids.is_empty() {
        String::new()
    } else {
        format!(" ({})", kids.join(", "))
    }
}

fn lag_refusal(key: &KeyRecord, lag: u64) -> PinError {
    let detail = match key.published_at {
        None => format!(
            "pin {} has not been published in a signed manifest yet, so no app can know it",
            key.kid
        ),
        Some(p) => format!(
            "pin {} was published at {p} and may become active at {} (max_update_lag {}); activating earlier needs custodian approval (override)",
            key.kid,
            p.saturating_add(lag),
            tresor_wire::duration::format_seconds(lag)
        ),
    };
    PinError::rule(Rule::PublishedForUpdateLag, detail)
}

/// Private keys created and destroyed by one change.
#[derive(Default)]
struct KeyChanges {
    created: Vec<(String, PrivateKey)>,
    destroyed: Vec<String>,
}

impl KeyChanges {
    fn destroy(&mut self, key: &mut KeyRecord) {
        if key.private_key {
            key.private_key = false;
            self.destroyed.push(key.kid.clone());
        }
    }
}

fn life_cycle(key: &KeyRecord, action: &str) -> PinError {
    PinError::rule(
        Rule::LifeCycle,
        format!(
            "key {} is {}: it cannot be {action}",
            key.kid,
            key.state.name()
        ),
    )
}

/// Pinning apps, their keys and manifests, kept in the vault's sealed records.
#[derive(Clone)]
pub struct Pins {
    store: SealedStore,
}

impl Pins {
    /// The pins of the vault behind `store`.
    pub fn new(store: SealedStore) -> Self {
        Pins { store }
    }

    /// Creates a pinning app. It has no manifest until it has two pins.
    pub fn create_pin_app(&self, name: &str, spec: &AppSpec) -> Result<PinApp, Error> {
        validate_app_name(name)?;
        validate_spec(spec)?;
        let _serial = PINS.lock().unwrap_or_else(|p| p.into_inner());
        let records = self.store.records()?;
        let path = app_path(name);
        if records.get::<AppRecord>(&path)?.is_some() {
            return Err(PinError::AppExists(name.to_owned()).into());
        }
        let record = AppRecord {
            name: name.to_owned(),
            spec: spec.clone(),
            created_at: self.store.clock().now(),
            keys: Vec::new(),
            manifest: None,
        };
        records.commit(
            Batch::new()
                .expect(path.clone(), None)
                .put(path.clone(), records.seal(&path, &record)),
        )?;
        Ok(record.view())
    }

    /// One app.
    pub fn pin_app(&self, name: &str) -> Result<PinApp, Error> {
        validate_app_name(name)?;
        Ok(load_app(&self.store.records()?, name)?.0.view())
    }

    /// App names, sorted.
    pub fn list_pin_apps(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .store
            .records()?
            .scan::<AppRecord>(APP_PREFIX)?
            .into_iter()
            .map(|(_, a)| a.name)
            .collect())
    }

    /// Generates a key pair in the vault (private key under the barrier) and stages its pin.
    pub fn generate_pin_key(&self, app: &str, algorithm: KeyAlgorithm) -> Result<PinChange, Error> {
        let key = PrivateKey::generate(algorithm)?;
        self.change_app(app, |record, changes, now| {
            let info = spki::describe_spki(&key.spki_der)?;
            let kid = record.add_key(&info, "generated", true, now)?;
            changes.created.push((kid.clone(), key));
            Ok((kid, Vec::new()))
        })
    }

    /// Stages the pin of a key held elsewhere, read from a certificate, CSR or public key.
    pub fn import_pin_key(
        &self,
        app: &str,
        source: KeySource,
        input: &[u8],
    ) -> Result<PinChange, Error> {
        let info = spki::public_key_from(source, input)?;
        let origin = source.name();
        self.change_app(app, |record, _, now| {
            let kid = record.add_key(&info, origin, false, now)?;
            Ok((kid, Vec::new()))
        })
    }

    /// Makes a staged key active: after `max_update_lag` since its publication, or earlier
    /// with [`ActivationMode::Override`] (which only an approved dual-control request uses).
    pub fn activate_pin_key(
        &self,
        app: &str,
        kid: &str,
        mode: ActivationMode,
    ) -> Result<PinChange, Error> {
        self.change_app(app, |record, _, now| {
            let lag = record.spec.max_update_lag;
            let key = record.key_mut(kid)?;
            if key.state != PinState::Staged {
                return Err(life_cycle(key, "activated (only a staged key can)"));
            }
            let ready = key.published_at.map(|p| p.saturating_add(lag));
            match (mode, key.published_at, ready) {
                (_, None, _) => return Err(lag_refusal(key, lag)),
                (ActivationMode::Lag, _, Some(r)) if now < r => {
                    return Err(lag_refusal(key, lag));
                }
                _ => {}
            }
            key.state = PinState::Active;
            key.activated_at = Some(now);
            key.activation = Some(mode);
            Ok((kid.to_owned(), Vec::new()))
        })
    }

    /// Whether activating `kid` now needs an override (it exists, is staged and published,
    /// but its lag has not passed).
    pub fn pin_activation_needs_override(&self, app: &str, kid: &str) -> Result<bool, Error> {
        let (record, _) = load_app(&self.store.records()?, app)?;
        let key = record.key(kid)?;
        let now = self.store.clock().now();
        Ok(key.state == PinState::Staged
            && key
                .published_at
                .is_some_and(|p| now < p.saturating_add(record.spec.max_update_lag)))
    }

    /// Retires a key: active → retiring (still accepted while certificates move), retiring or
    /// staged → retired (removed from the manifest, private key destroyed).
    pub fn retire_pin_key(&self, app: &str, kid: &str) -> Result<PinChange, Error> {
        self.change_app(app, |record, changes, now| {
            let key = record.key_mut(kid)?;
            match key.state {
                PinState::Active => key.state = PinState::Retiring,
                PinState::Staged | PinState::Retiring => {
                    key.state = PinState::Retired;
                    key.ended_at = Some(now);
                    changes.destroy(key);
                }
                _ => return Err(life_cycle(key, "retired")),
            }
            Ok((kid.to_owned(), Vec::new()))
        })
    }

    /// Marks a key compromised (its private key is destroyed and its pin withdrawn); if it was
    /// serving and no other key is active, promotes the already-published backup at once; in
    /// every case stages a new backup generated in the vault.
    pub fn compromise_pin_key(&self, app: &str, kid: &str) -> Result<PinChange, Error> {
        let key = self.pin_app(app)?;
        let algorithm = key
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .and_then(|k| KeyAlgorithm::from_name(&k.algorithm))
            .unwrap_or_default();
        let backup = PrivateKey::generate(algorithm)?;
        self.change_app(app, |record, changes, now| {
            let key = record.key_mut(kid)?;
            if !key.state.accepted() {
                return Err(life_cycle(key, "compromised"));
            }
            let was_serving = key.state.serving();
            key.state = PinState::Compromised;
            key.ended_at = Some(now);
            changes.destroy(key);
            let mut also = Vec::new();
            let still_active = record.keys.iter().any(|k| k.state == PinState::Active);
            if was_serving && !still_active {
                let promoted = record
                    .keys
                    .iter_mut()
                    .filter(|k| k.state == PinState::Staged && k.published_at.is_some())
                    .min_by_key(|k| (k.published_at, k.created_at))
                    .ok_or_else(|| {
                        PinError::rule(
                            Rule::BackupNotServing,
                            "no published backup to promote in place of the compromised key",
                        )
                    })?;
                promoted.state = PinState::Active;
                promoted.activated_at = Some(now);
                promoted.activation = Some(ActivationMode::Emergency);
                also.push(promoted.kid.clone());
            }
            let info = spki::describe_spki(&backup.spki_der)?;
            let new_kid = record.add_key(&info, "generated", true, now)?;
            changes.created.push((new_kid.clone(), backup));
            also.push(new_kid);
            Ok((kid.to_owned(), also))
        })
    }

    /// A PKCS#10 CSR for `subject` and the DNS names `dns`, signed with the vault-held private
    /// key of `kid`. With no names given it asks for the app's hosts (and `*.host` for hosts
    /// whose pins cover subdomains).
    pub fn pin_key_csr(
        &self,
        app: &str,
        kid: &str,
        subject: &str,
        dns: &[String],
    ) -> Result<String, Error> {
        let (key, _) = self.private_pin_key(app, kid)?;
        let names: Vec<String> = if dns.is_empty() {
            let record = self.pin_app(app)?;
            record
                .spec
                .hosts
                .iter()
                .flat_map(|h| {
                    let mut names = vec![h.name.clone()];
                    if h.subdomains != tresor_wire::pins::SubdomainScope::None {
                        names.push(format!("*.{}", h.name));
                    }
                    names
                })
                .collect()
        } else {
            for name in dns {
                let host = tresor_wire::pins::Host {
                    name: name.strip_prefix("*.").unwrap_or(name).to_owned(),
                    subdomains: tresor_wire::pins::SubdomainScope::None,
                };
                validate_host(&host).map_err(|_| PinError::Input {
                    field: "dns",
                    reason: format!(
                        "`{}` is not a lower-case DNS name (a leading `*.` is allowed)",
                        name.chars().take(64).collect::<String>()
                    ),
                })?;
            }
            dns.to_vec()
        };
        Ok(csr::csr(&key, subject, &names)?)
    }

    /// The private key of `kid`, sealed to a TLS terminator's X25519 key (its identity's public
    /// half).
    pub fn deliver_pin_key(
        &self,
        app: &str,
        kid: &str,
        recipient: &CustodianPublicKey,
    ) -> Result<DeliveredKey, Error> {
        let (key, record) = self.private_pin_key(app, kid)?;
        let context = delivery_context(app, kid, &record.algorithm, &record.pin);
        let sealed = recipient
            .seal(DELIVERY_PURPOSE, context.as_slice(), key.pkcs8())
            .map_err(|e| tresor_core::Error::invalid("recipient", e.to_string()))?;
        Ok(DeliveredKey {
            kind: DELIVERY_TYPE.into(),
            app: app.to_owned(),
            kid: kid.to_owned(),
            algorithm: record.algorithm,
            pin: record.pin,
            recipient: recipient.name().to_owned(),
            sealed: STANDARD.encode(sealed),
        })
    }

    fn private_pin_key(&self, app: &str, kid: &str) -> Result<(PrivateKey, KeyRecord), Error> {
        let records = self.store.records()?;
        let (record, _) = load_app(&records, app)?;
        let key = record.key(kid)?.clone();
        let missing = |reason: &str| PinError::NoPrivateKey {
            app: app.to_owned(),
            kid: kid.to_owned(),
            reason: reason.to_owned(),
        };
        if !key.state.accepted() {
            return Err(missing(&format!("the key is {}", key.state.name())).into());
        }
        if !key.private_key {
            return Err(missing(&format!(
                "it was imported from a {}; its private key is held elsewhere",
                key.origin
            ))
            .into());
        }
        let path = private_path(app, kid);
        let (private, _) = records
            .get::<PrivateRecord>(&path)?
            .ok_or(tresor_core::Error::Integrity { path })?;
        let loaded = PrivateKey::from_pkcs8(private.algorithm, private.pkcs8.0.clone())?;
        Ok((loaded, key))
    }

    /// The latest signed manifest (`version` `None`) or a given version: the envelope JSON
    /// exactly as signed and stored.
    pub fn pin_manifest(&self, app: &str, version: Option<u64>) -> Result<String, Error> {
        let records = self.store.records()?;
        let (record, _) = load_app(&records, app)?;
        let not_found = || PinError::ManifestNotFound {
            app: app.to_owned(),
            version,
        };
        let latest = record.manifest.as_ref().ok_or_else(not_found)?.version;
        let version = version.unwrap_or(latest);
        let (stored, _) = records
            .get::<StoredManifest>(&manifest_path(app, version))?
            .ok_or_else(not_found)?;
        Ok(stored.envelope)
    }

    /// The latest manifest of `app` rendered for a platform.
    pub fn export_pins(&self, app: &str, format: ExportFormat) -> Result<String, Error> {
        let envelope_json = self.pin_manifest(app, None)?;
        let envelope: Envelope =
            serde_json::from_str(&envelope_json).map_err(|_| tresor_core::Error::Integrity {
                path: app_path(app),
            })?;
        let payload =
            STANDARD
                .decode(&envelope.payload)
                .map_err(|_| tresor_core::Error::Integrity {
                    path: app_path(app),
                })?;
        let manifest: Manifest =
            serde_json::from_slice(&payload).map_err(|_| tresor_core::Error::Integrity {
                path: app_path(app),
            })?;
        Ok(tresor_wire::pins::export(format, &manifest, &envelope)?)
    }

    /// The manifest signing key chain (made on first use).
    pub fn manifest_keys(&self) -> Result<ManifestKeyInfo, Error> {
        let _serial = PINS.lock().unwrap_or_else(|p| p.into_inner());
        let records = self.store.records()?;
        let mut batch = Batch::new();
        let (chain, current) =
            manifest_key_chain(&records, &mut batch, self.store.clock().now(), None)?;
        if !batch.is_empty() {
            records.commit(batch)?;
        }
        let public = current.verifying_key();
        Ok(ManifestKeyInfo {
            keyid: key_id(&public),
            public_key_pem: manifest::manifest_key_pem(&public),
            key_chain: chain,
        })
    }

    /// Replaces the manifest signing key with a new one signed by the current one, then
    /// re-signs every app's manifest with it.
    pub fn rotate_manifest_key(&self) -> Result<ManifestKeyInfo, Error> {
        {
            let _serial = PINS.lock().unwrap_or_else(|p| p.into_inner());
            let records = self.store.records()?;
            let now = self.store.clock().now();
            let mut batch = Batch::new();
            let (chain, current) = manifest_key_chain(&records, &mut batch, now, None)?;
            let next = SigningKey::generate();
            let sig = current.sign(&pae(KEY_PAYLOAD_TYPE, next.verifying_key().as_bytes()));
            let generation = chain.last().and_then(|l| l.generation).unwrap_or(0) + 1;
            put_manifest_key(
                &records,
                &mut batch,
                generation,
                &next,
                Some(STANDARD.encode(sig)),
                now,
            );
            records.commit(batch)?;
        }
        for app in self.list_pin_apps()? {
            if self.pin_app(&app)?.manifest_version.is_some() {
                self.reissue_pin_manifest(&app)?;
            }
        }
        self.manifest_keys()
    }

    /// Signs a new version of `app`'s manifest with unchanged pins (fresh `issued_at` and
    /// `expires`).
    pub fn reissue_pin_manifest(&self, app: &str) -> Result<u64, Error> {
        let change = self.change_app(app, |record, _, _| {
            if record.manifest.is_none() {
                return Err(PinError::ManifestNotFound {
                    app: record.name.clone(),
                    version: None,
                });
            }
            Ok((String::new(), Vec::new()))
        })?;
        Ok(change.manifest_version.expect("a manifest was signed"))
    }

    /// Re-signs every manifest that has used up half of its freshness window (so clients
    /// always find a fresh one well before `expires`). Returns `(app, version)` for each.
    pub fn reissue_due_pin_manifests(&self) -> Result<Vec<(String, u64)>, Error> {
        let now = self.store.clock().now();
        let mut done = Vec::new();
        for (_, record) in self.store.records()?.scan::<AppRecord>(APP_PREFIX)? {
            let Some(last) = &record.manifest else {
                continue;
            };
            if now >= last.issued_at.saturating_add(record.spec.expires / 2) {
                done.push((
                    record.name.clone(),
                    self.reissue_pin_manifest(&record.name)?,
                ));
            }
        }
        Ok(done)
    }

    /// The log of every signed manifest, oldest first.
    pub fn pin_log(&self) -> Result<Vec<LogEntry>, Error> {
        Ok(self
            .store
            .records()?
            .scan::<LogEntry>(LOG_PREFIX)?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    /// Checks the log's hash chain end to end and against its head; returns its length.
    pub fn verify_pin_log(&self) -> Result<u64, Error> {
        let records = self.store.records()?;
        let entries = self.pin_log()?;
        let prev =
            tresor_wire::pins::verify_log(&entries).map_err(|e| tresor_core::Error::Integrity {
                path: format!("{LOG_PREFIX}{:012} ({e})", e.seq()),
            })?;
        let head = records.get::<LogHead>(LOG_HEAD)?.map(|(h, _)| h);
        match head {
            None if entries.is_empty() => Ok(0),
            Some(h) if h.seq == entries.len() as u64 && h.hash == prev => Ok(h.seq),
            _ => Err(tresor_core::Error::Integrity {
                path: LOG_HEAD.to_owned(),
            }
            .into()),
        }
    }

    /// Applies `change` to `app`, checks the invariants, signs the next manifest (once the app
    /// can have one) and commits everything at once.
    fn change_app(
        &self,
        app: &str,
        change: impl FnOnce(
            &mut AppRecord,
            &mut KeyChanges,
            u64,
        ) -> Result<(String, Vec<String>), PinError>,
    ) -> Result<PinChange, Error> {
        validate_app_name(app)?;
        let _serial = PINS.lock().unwrap_or_else(|p| p.into_inner());
        let records = self.store.records()?;
        let now = self.store.clock().now();
        let (mut record, raw) = load_app(&records, app)?;
        let mut changes = KeyChanges::default();
        let (kid, also) = change(&mut record, &mut changes, now)?;
        let path = app_path(app);
        let mut batch = Batch::new().expect(path.clone(), Some(raw));
        // Before the first manifest an app may hold fewer pins than one needs: nothing is
        // signed until the invariants hold. After it, every change must keep them.
        let sign = record.manifest.is_some() || record.check(now).is_ok();
        let version = if sign {
            Some(self.sign_manifest(&records, &mut record, &mut batch, now)?)
        } else {
            None
        };
        for (kid, key) in &changes.created {
            let path = private_path(app, kid);
            let private = PrivateRecord {
                algorithm: key.algorithm,
                pkcs8: StoredBytes::new(key.pkcs8().to_vec()),
            };
            batch.push_put(path.clone(), records.seal(&path, &private));
        }
        for kid in &changes.destroyed {
            batch.push_delete(private_path(app, kid));
        }
        batch.push_put(path.clone(), records.seal(&path, &record));
        records.commit(batch)?;
        if !changes.destroyed.is_empty() {
            // Retired and compromised keys must not linger in the data directory.
            records.purge_stale()?;
        }
        let info = |kid: &str| record.info(kid);
        Ok(PinChange {
            key: (!kid.is_empty()).then(|| info(&kid)),
            also: also.iter().map(|k| info(k)).collect(),
            manifest_version: version,
        })
    }

    /// Checks the invariants and signs the next manifest into `batch`; updates `record`.
    fn sign_manifest(
        &self,
        records: &SealedRecords,
        record: &mut AppRecord,
        batch: &mut Batch,
        now: u64,
    ) -> Result<u64, Error> {
        let previous = record.manifest.clone();
        let version = previous.as_ref().map_or(1, |m| m.version + 1);
        let issued_at = previous.as_ref().map_or(now, |m| m.issued_at.max(now));
        if previous.as_ref().is_some_and(|m| version <= m.version) {
            return Err(
                PinError::rule(Rule::VersionsIncrease, "version would not increase").into(),
            );
        }
        for key in record.keys.iter_mut().filter(|k| k.state.accepted()) {
            key.published_at.get_or_insert(issued_at);
        }
        record.check(now)?;
        let manifest = Manifest {
            kind: MANIFEST_TYPE.into(),
            app: record.name.clone(),
            version,
            prev: previous.as_ref().map(|m| m.hash.clone()),
            issued_at,
            expires: issued_at.saturating_add(record.spec.expires),
            enforce_until: issued_at.saturating_add(record.spec.enforce_until),
            max_update_lag: record.spec.max_update_lag,
            hosts: record.spec.hosts.clone(),
            pins: record
                .keys
                .iter()
                .filter(|k| k.state.accepted())
                .map(|k| ManifestPin {
                    kid: k.kid.clone(),
                    sha256: k.pin.clone(),
                    algorithm: k.algorithm.clone(),
                    state: k.state,
                    published_at: k.published_at.unwrap_or(issued_at),
                })
                .collect(),
        };
        let payload = serde_json::to_vec(&manifest).expect("manifest serializes");
        let (chain, signer) = manifest_key_chain(records, batch, now, Some(&record.name))?;
        let signature = signer.sign(&pae(PAYLOAD_TYPE, &payload));
        let envelope = Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload: STANDARD.encode(&payload),
            signatures: vec![EnvelopeSignature {
                keyid: key_id(&signer.verifying_key()),
                sig: STANDARD.encode(signature),
            }],
            key_chain: chain,
        };
        let hash = manifest_hash(&payload);
        let stored = StoredManifest {
            envelope: serde_json::to_string(&envelope).expect("envelope serializes"),
        };
        let path = manifest_path(&record.name, version);
        batch.push_put(path.clone(), records.seal(&path, &stored));
        // Append to the hash-chained log.
        let head = records.get::<LogHead>(LOG_HEAD)?;
        let (seq, prev) = head
            .as_ref()
            .map_or((1, zero_hash()), |(h, _)| (h.seq + 1, h.hash.clone()));
        let mut entry = LogEntry {
            seq,
            app: record.name.clone(),
            version,
            manifest_hash: hash.clone(),
            issued_at,
            prev,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        let entry_path = format!("{LOG_PREFIX}{seq:012}");
        let new_head = LogHead {
            seq,
            hash: entry.hash.clone(),
        };
        batch.push_expect(LOG_HEAD, head.map(|(_, raw)| raw));
        batch.push_expect(path, None);
        batch.push_expect(entry_path.clone(), None);
        batch.push_put(entry_path.clone(), records.seal(&entry_path, &entry));
        batch.push_put(LOG_HEAD, records.seal(LOG_HEAD, &new_head));
        record.manifest = Some(LastManifest {
            version,
            issued_at,
            hash,
            active: record
                .keys
                .iter()
                .filter(|k| k.state == PinState::Active)
                .map(|k| k.kid.clone())
                .collect(),
        });
        Ok(version)
    }
}

fn load_app(records: &SealedRecords, app: &str) -> Result<(AppRecord, Vec<u8>), Error> {
    validate_app_name(app)?;
    records
        .get::<AppRecord>(&app_path(app))?
        .ok_or_else(|| PinError::AppNotFound(app.to_owned()).into())
}

/// The chain of manifest keys and the current signing key; makes the first key (adding it to
/// `batch`) if there is none yet.
fn manifest_key_chain(
    records: &SealedRecords,
    batch: &mut Batch,
    now: u64,
    app: Option<&str>,
) -> Result<(Vec<ChainLink>, SigningKey), Error> {
    let mut stored = records.scan::<ManifestKeyRecord>(MANIFEST_KEY_PREFIX)?;
    if stored.is_empty() {
        let signer = SigningKey::generate();
        let link = put_manifest_key(records, batch, 1, &signer, None, now);
        stored.push((
            String::new(),
            ManifestKeyRecord {
                generation: 1,
                secret: StoredBytes::new(signer.to_bytes().to_vec()),
                link,
                created_at: now,
            },
        ));
    }
    // A key about to expire is replaced (linked by itself while it is still valid), so a
    // manifest is never signed by a key clients would refuse.
    let last = &stored.last().expect("at least one key").1;
    if now.saturating_add(MANIFEST_KEY_RENEWAL)
        >= last.created_at.saturating_add(MANIFEST_KEY_LIFETIME)
        && !batch_has_key(batch, last.generation + 1)
    {
        let current = record_key(last)?;
        let next = SigningKey::generate();
        let sig = current.sign(&pae(KEY_PAYLOAD_TYPE, next.verifying_key().as_bytes()));
        let generation = last.generation + 1;
        let link = put_manifest_key(
            records,
            batch,
            generation,
            &next,
            Some(STANDARD.encode(sig)),
            now,
        );
        stored.push((
            String::new(),
            ManifestKeyRecord {
                generation,
                secret: StoredBytes::new(next.to_bytes().to_vec()),
                link,
                created_at: now,
            },
        ));
    }
    let mut chain = Vec::with_capacity(stored.len());
    let mut previous: Option<SigningKey> = None;
    for (_, record) in &stored {
        let key = record_key(record)?;
        let mut link = record.link.clone();
        link.generation = Some(record.generation);
        link.issued_at = Some(record.created_at);
        link.expires = Some(record.created_at.saturating_add(MANIFEST_KEY_LIFETIME));
        if let Some(app) = app {
            link.app = Some(app.to_owned());
            if let Some(signer) = &previous {
                let binding = manifest::LinkBinding {
                    app: app.to_owned(),
                    generation: record.generation,
                    key: link.key.clone(),
                    issued_at: record.created_at,
                    expires: record.created_at.saturating_add(MANIFEST_KEY_LIFETIME),
                };
                link.link_sig = Some(STANDARD.encode(signer.sign(&binding.signed_bytes())));
            }
        }
        chain.push(link);
        previous = Some(key);
    }
    Ok((chain, previous.expect("at least one key")))
}

/// The signing key of a stored manifest key record.
fn record_key(record: &ManifestKeyRecord) -> Result<SigningKey, Error> {
    SigningKey::from_slice(&record.secret.0).ok_or_else(|| {
        tresor_core::Error::Integrity {
            path: format!("{MANIFEST_KEY_PREFIX}{:06}", record.generation),
        }
        .into()
    })
}

/// True if `batch` already creates manifest key `generation`.
fn batch_has_key(batch: &Batch, generation: u32) -> bool {
    let path = format!("{MANIFEST_KEY_PREFIX}{generation:06}");
    batch.writes().any(|(p, _)| p == path)
}

/// Seals manifest key `generation` (linked to its predecessor by `sig`, none for the first)
/// into `batch`, which then expects it not to exist yet; returns its chain link.
fn put_manifest_key(
    records: &SealedRecords,
    batch: &mut Batch,
    generation: u32,
    key: &SigningKey,
    sig: Option<String>,
    now: u64,
) -> ChainLink {
    let public = key.verifying_key();
    // Stored in format 1; the format-2 fields are bound per app when an envelope is made.
    let link = ChainLink {
        keyid: key_id(&public),
        key: STANDARD.encode(public.as_bytes()),
        sig,
        generation: None,
        issued_at: None,
        expires: None,
        app: None,
        link_sig: None,
    };
    let path = format!("{MANIFEST_KEY_PREFIX}{generation:06}");
    let record = ManifestKeyRecord {
        generation,
        secret: StoredBytes::new(Zeroizing::new(key.to_bytes()).to_vec()),
        link: link.clone(),
        created_at: now,
    };
    batch.push_expect(path.clone(), None);
    batch.push_put(path.clone(), records.seal(&path, &record));
    link
}

fn validate_spec(spec: &AppSpec) -> Result<(), PinError> {
    let bad = |field: &'static str, reason: String| PinError::Input { field, reason };
    if spec.hosts.is_empty() {
        return Err(bad("host", "an app needs at least one host".into()));
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        validate_host(host)?;
        if spec.hosts[..i].iter().any(|h| h.name == host.name) {
            return Err(bad("host", format!("{} is listed twice", host.name)));
        }
    }
    if spec.max_update_lag == 0 {
        return Err(bad(
            "max_update_lag",
            "must be positive: it is how long the slowest app takes to update".into(),
        ));
    }
    if spec.expires < MIN_FRESHNESS {
        return Err(bad("expires", "must be at least 1h".into()));
    }
    if spec.enforce_until < spec.expires {
        return Err(bad(
            "enforce_until",
            "must not be shorter than expires".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_wire::pins::parse_host;

    fn key(kid: &str, state: PinState, published_at: Option<u64>) -> KeyRecord {
        KeyRecord {
            kid: kid.into(),
            algorithm: "ecdsa-p256".into(),
            origin: "generated".into(),
            spki: String::new(),
            pin: kid.into(),
            state,
            created_at: 0,
            published_at,
            activated_at: None,
            activation: Some(ActivationMode::Lag),
            ended_at: None,
            private_key: false,
        }
    }

    fn app(keys: Vec<KeyRecord>, active: &[&str]) -> AppRecord {
        AppRecord {
            name: "app".into(),
            spec: AppSpec {
                hosts: vec![parse_host("a.example.com").unwrap()],
                max_update_lag: 100,
                expires: 3600,
                enforce_until: 7200,
            },
            created_at: 0,
            keys,
            manifest: Some(LastManifest {
                version: 3,
                issued_at: 10,
                hash: String::new(),
                active: active.iter().map(|k| (*k).to_owned()).collect(),
            }),
        }
    }

    #[test]
    fn an_active_pin_that_disappears_is_refused_unless_compromised() {
        let keys = |a: PinState| {
            vec![
                key("a", a, Some(0)),
                key("b", PinState::Staged, Some(0)),
                key("c", PinState::Staged, Some(0)),
            ]
        };
        let refused = app(keys(PinState::Retired), &["a"]).check(1000);
        assert!(matches!(
            refused,
            Err(PinError::Rule {
                rule: Rule::ActiveNeverRemoved,
                ..
            })
        ));
        assert!(app(keys(PinState::Retiring), &["a"]).check(1000).is_ok());
        assert!(app(keys(PinState::Compromised), &["a"]).check(1000).is_ok());
    }

    #[test]
    fn a_newly_active_pin_must_have_aged() {
        let record = app(
            vec![
                key("a", PinState::Active, Some(950)),
                key("b", PinState::Staged, Some(0)),
            ],
            &[],
        );
        assert!(matches!(
            record.check(1000),
            Err(PinError::Rule {
                rule: Rule::PublishedForUpdateLag,
                ..
            })
        ));
        assert!(record.check(1050).is_ok());
    }

    #[test]
    fn log_entries_chain() {
        let mut entry = LogEntry {
            seq: 1,
            app: "a".into(),
            version: 1,
            manifest_hash: "sha256:00".into(),
            issued_at: 5,
            prev: zero_hash(),
            hash: String::new(),
        };
        let first = entry.compute_hash();
        entry.version = 2;
        assert_ne!(entry.compute_hash(), first);
    }
}
