//! The signed manifest and its verification, exactly as a client does it (docs/pinning.md, "The
//! manifest, byte for byte" and "Verifying a manifest in the app").
//!
//! ```text
//! envelope = { "payloadType": "application/vnd.tresor.pin-manifest+json",
//!              "payload":     base64(manifest JSON bytes),
//!              "signatures":  [{ "keyid": hex, "sig": base64(Ed25519(PAE(payloadType, payload))) }],
//!              "key_chain":   [{ "keyid": hex, "key": base64(32-byte Ed25519 key),
//!                                "sig": base64(Ed25519 by the previous key over
//!                                              PAE("application/vnd.tresor.manifest-key", key)) }, …] }
//! PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body   (lengths in ASCII decimal)
//! keyid           = hex(SHA-256(key))[..32]
//! hash(manifest)  = "sha256:" hex(SHA-256(payload bytes))
//! ```
//! The signature covers the exact payload bytes; they are parsed only after it verifies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tresor_crypto::sign::VerifyingKey;
use tresor_crypto::{hex, sha256};

/// The DSSE payload type of a manifest.
pub const PAYLOAD_TYPE: &str = "application/vnd.tresor.pin-manifest+json";
/// The DSSE payload type a manifest key signs its successor under (link format 1: the key
/// alone; kept for app builds that verify only that).
pub const KEY_PAYLOAD_TYPE: &str = "application/vnd.tresor.manifest-key";
/// The DSSE payload type of a link's binding (link format 2): [`LinkBinding`] as JSON.
pub const LINK_PAYLOAD_TYPE: &str = "application/vnd.tresor.manifest-key-link+json";
/// The longest a manifest key may be valid for, from its link's `issued_at` to its `expires`
/// (a client refuses a link that claims more, so a retired key cannot mint a long-lived one).
pub const MAX_KEY_LIFETIME: u64 = 400 * 86_400;
/// The `type` field inside every manifest.
pub const MANIFEST_TYPE: &str = "tresor-pin-manifest-v1";

/// How far below a host a pin applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SubdomainScope {
    /// The host only.
    #[default]
    None,
    /// The host and its direct subdomains (one more label).
    One,
    /// The host and every subdomain below it.
    All,
}

impl SubdomainScope {
    /// `none`, `one` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            SubdomainScope::None => "none",
            SubdomainScope::One => "one",
            SubdomainScope::All => "all",
        }
    }
}

/// A host an app connects to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// DNS name, lower case.
    pub name: String,
    /// How far below it the pins apply.
    pub subdomains: SubdomainScope,
}

/// A pinned key's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinState {
    /// Published as a backup; not serving yet.
    Staged,
    /// Serving (the TLS terminators hold it).
    Active,
    /// Still accepted while certificates move to the next key.
    Retiring,
    /// Gone: no longer accepted, private key destroyed.
    Retired,
    /// Known or suspected exposed: no longer accepted, private key destroyed.
    Compromised,
}

impl PinState {
    /// `staged`, `active`, …
    pub fn name(self) -> &'static str {
        match self {
            PinState::Staged => "staged",
            PinState::Active => "active",
            PinState::Retiring => "retiring",
            PinState::Retired => "retired",
            PinState::Compromised => "compromised",
        }
    }

    /// Whether clients accept the pin (it appears in the manifest).
    pub fn accepted(self) -> bool {
        matches!(
            self,
            PinState::Staged | PinState::Active | PinState::Retiring
        )
    }

    /// Whether a TLS terminator may be serving the key.
    pub fn serving(self) -> bool {
        matches!(self, PinState::Active | PinState::Retiring)
    }
}

/// One accepted pin in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPin {
    /// The key's id within the app.
    pub kid: String,
    /// base64(SHA-256(DER SubjectPublicKeyInfo)).
    pub sha256: String,
    /// `ecdsa-p256`, `ed25519`, `rsa-2048`, …
    pub algorithm: String,
    /// `staged`, `active` or `retiring`.
    pub state: PinState,
    /// When the pin first appeared in a signed manifest (Unix seconds).
    pub published_at: u64,
}

/// The signed content (the envelope's payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The app.
    pub app: String,
    /// Strictly increasing per app, from 1.
    pub version: u64,
    /// `sha256:<hex>` of the previous version's payload; `null` for version 1.
    pub prev: Option<String>,
    /// When it was signed (Unix seconds).
    pub issued_at: u64,
    /// Clients must not use it after this time (Unix seconds): freshness.
    pub expires: u64,
    /// Until when a client that cannot fetch a fresh manifest may keep enforcing the last good
    /// one (Unix seconds).
    pub enforce_until: u64,
    /// The app's update lag in seconds: a staged pin becomes active only this long after
    /// `published_at`.
    pub max_update_lag: u64,
    /// Hosts the pins apply to.
    pub hosts: Vec<Host>,
    /// Every accepted pin (each applies to every host).
    pub pins: Vec<ManifestPin>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Id of the signing key.
    pub keyid: String,
    /// base64 Ed25519 signature over PAE(payloadType, payload).
    pub sig: String,
}

/// One manifest signing key, signed by its predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLink {
    /// hex(SHA-256(key))[..32].
    pub keyid: String,
    /// base64 of the 32-byte Ed25519 public key.
    pub key: String,
    /// Link format 1: base64 Ed25519 signature by the previous key over
    /// PAE([`KEY_PAYLOAD_TYPE`], key bytes); `null` for the first key.
    pub sig: Option<String>,
    /// Link format 2: the key's generation (1 for the first), counting up by one per link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    /// When the key was made (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    /// After this time the key signs nothing (no manifest, no link) a client accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// The app this envelope's links are bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// base64 Ed25519 signature by the previous key over PAE([`LINK_PAYLOAD_TYPE`], the JSON
    /// of [`LinkBinding`]); `null` for the first key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_sig: Option<String>,
}

/// What a format-2 link binds, signed by the previous key: the key, its app, generation and
/// validity. Serialised with exactly these fields in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkBinding {
    /// The app.
    pub app: String,
    /// The key's generation.
    pub generation: u32,
    /// base64 of the key.
    pub key: String,
    /// When it was made.
    pub issued_at: u64,
    /// When it stops signing.
    pub expires: u64,
}

impl LinkBinding {
    /// The bytes the previous key signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        pae(
            LINK_PAYLOAD_TYPE,
            &serde_json::to_vec(self).expect("serializes"),
        )
    }
}

/// A signed manifest as served and stored (DSSE-style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// [`PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// base64 of the exact manifest bytes that were signed.
    pub payload: String,
    /// One signature, by the last key of `key_chain`.
    pub signatures: Vec<EnvelopeSignature>,
    /// Every manifest key from the first, each signed by the one before.
    pub key_chain: Vec<ChainLink>,
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The id of a manifest key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex(&sha256(&[key.as_bytes()])[..16])
}

/// `sha256:<hex>` of manifest payload bytes.
pub fn manifest_hash(payload: &[u8]) -> String {
    format!("sha256:{}", hex(&sha256(&[payload])))
}

/// What a client remembers of the last manifest it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientState {
    /// The app.
    pub app: String,
    /// Version of the last accepted manifest.
    pub version: u64,
    /// Its `issued_at`.
    pub issued_at: u64,
    /// Its hash (`sha256:<hex>`).
    pub hash: String,
    /// The generation of the key that signed it.
    #[serde(default)]
    pub key_generation: u32,
    /// The id of the key that signed it: a later chain must hold this key at that generation.
    #[serde(default)]
    pub keyid: String,
}

/// A manifest that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// Its hash.
    pub hash: String,
    /// The id of the key that signed it.
    pub signed_by: String,
    /// What to remember for the next verification.
    pub state: ClientState,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not an envelope, or its payload is not a manifest.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// The trusted key is not in the envelope's key chain.
    #[error("the trusted manifest key {0} is not in the manifest's key chain")]
    UntrustedKey(String),
    /// A link of the key chain is not signed by its predecessor.
    #[error("manifest key chain broken: key {0} is not signed by the key before it")]
    BrokenChain(String),
    /// The signature does not verify over the payload.
    #[error("manifest signature does not verify (altered, or not signed by the chain's last key)")]
    BadSignature,
    /// Older than the last accepted manifest.
    #[error(
        "rollback: manifest version {version} issued at {issued_at} is older than the last accepted (version {seen_version}, issued at {seen_issued_at})"
    )]
    Rollback {
        /// This manifest's version.
        version: u64,
        /// Its issued_at.
        issued_at: u64,
        /// The stored version.
        seen_version: u64,
        /// The stored issued_at.
        seen_issued_at: u64,
    },
    /// Expired: a frozen (withheld) update is suspected.
    #[error("freeze: manifest expired at {expires}, it is now {now}")]
    Freeze {
        /// Its expiry.
        expires: u64,
        /// The verifier's time.
        now: u64,
    },
    /// `prev` does not match the hash of the last accepted manifest (or is malformed).
    #[error("prev hash mismatch: {0}")]
    PrevMismatch(String),
    /// A different manifest with the version already accepted: the signer equivocated.
    #[error("fork: a different manifest with version {0} was accepted before")]
    Fork(u64),
    /// A link lacks format 2, skips a generation, is bound to another app, claims too long a
    /// life, or was issued after its signer expired: a retired key tried to extend the chain.
    #[error("manifest key chain refused at key {key}: {reason}")]
    BadLink {
        /// The link's key id.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The chain holds another key than the one accepted before at that generation, or an
    /// older one: someone with a retired key forked the chain.
    #[error("manifest key chain fork: {0}")]
    ChainFork(String),
    /// The manifest is for another app than the stored state.
    #[error("manifest is for app `{found}`, the stored state for `{expected}`")]
    WrongApp {
        /// App in the state.
        expected: String,
        /// App in the manifest.
        found: String,
    },
}

/// Parses a manifest key given as base64 (32 bytes), or as a PEM/DER Ed25519
/// SubjectPublicKeyInfo.
pub fn parse_manifest_key(text: &[u8]) -> Result<VerifyingKey, VerifyError> {
    let bad = |r: &str| VerifyError::Malformed(format!("manifest key: {r}"));
    let trimmed = text.trim_ascii();
    let raw: Vec<u8> = if trimmed.starts_with(b"-----BEGIN") {
        let (label, der) = x509_cert::der::pem::decode_vec(trimmed).map_err(|_| bad("bad PEM"))?;
        if label != "PUBLIC KEY" {
            return Err(bad("PEM label is not PUBLIC KEY"));
        }
        spki_ed25519(&der).ok_or_else(|| bad("not an Ed25519 public key"))?
    } else if let Some(key) = spki_ed25519(trimmed) {
        key
    } else {
        let text = std::str::from_utf8(trimmed).map_err(|_| bad("not base64"))?;
        STANDARD.decode(text).map_err(|_| bad("not base64"))?
    };
    let raw: [u8; 32] = raw.try_into().map_err(|_| bad("not 32 bytes"))?;
    VerifyingKey::from_bytes(&raw).ok_or_else(|| bad("not a valid Ed25519 key"))
}

fn spki_ed25519(der: &[u8]) -> Option<Vec<u8>> {
    let prefix = super::spki::ed25519_spki(&[]);
    (der.len() == prefix.len() + 32 && der.starts_with(&prefix[..prefix.len()]))
        .then(|| der[prefix.len()..].to_vec())
}

/// A manifest key as a PEM SubjectPublicKeyInfo (the `.pub` file apps build in).
pub fn manifest_key_pem(key: &VerifyingKey) -> String {
    x509_cert::der::pem::encode_string(
        "PUBLIC KEY",
        x509_cert::der::pem::LineEnding::LF,
        &super::spki::ed25519_spki(key.as_bytes()),
    )
    .expect("PEM encodes")
}

fn decode_sig(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

fn decode_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = STANDARD.decode(text).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes)
}

/// Verifies a signed manifest as app `app` does: the key chain from `trust` (every link after
/// the trusted key in format 2, bound to `app`, generations counting up by one, each issued
/// while its signer was valid and valid itself for at most [`MAX_KEY_LIFETIME`]), the signature
/// by the newest key (issued while it was valid), the app, then against `state` (the last
/// accepted manifest): the same key at the generation seen before, no rollback of version or
/// issued_at, no second manifest for one version, and `prev` equal to the stored hash when this
/// is the next version; then freshness (`expires` after `now`).
pub fn verify(
    envelope_json: &[u8],
    trust: &VerifyingKey,
    app: &str,
    state: Option<&ClientState>,
    now: u64,
) -> Result<Verified, VerifyError> {
    let envelope: Envelope = serde_json::from_slice(envelope_json)
        .map_err(|e| VerifyError::Malformed(format!("not a manifest envelope: {e}")))?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::Malformed(format!(
            "payloadType is not {PAYLOAD_TYPE}"
        )));
    }
    // 1. Follow the key chain from the trusted key to the newest.
    let mut keys = Vec::with_capacity(envelope.key_chain.len());
    for link in &envelope.key_chain {
        let key = decode_key(&link.key).ok_or_else(|| {
            VerifyError::Malformed("a key_chain key is not an Ed25519 key".into())
        })?;
        keys.push(key);
    }
    let start = keys
        .iter()
        .position(|k| k == trust)
        .ok_or_else(|| VerifyError::UntrustedKey(key_id(trust)))?;
    let mut signer = *trust;
    let trusted = &envelope.key_chain[start];
    let mut generation = trusted.generation;
    let mut signer_expires = trusted.expires;
    let mut issued = trusted.issued_at.unwrap_or(0);
    let mut generations = vec![(generation, key_id(trust))];
    for (link, key) in envelope.key_chain.iter().zip(&keys).skip(start + 1) {
        let id = key_id(key);
        let bad = |reason: String| VerifyError::BadLink {
            key: id.clone(),
            reason,
        };
        let (Some(link_generation), Some(issued_at), Some(expires), Some(link_app), Some(sig)) = (
            link.generation,
            link.issued_at,
            link.expires,
            link.app.as_deref(),
            link.link_sig.as_deref().and_then(decode_sig),
        ) else {
            return Err(bad(
                "it is not a format-2 link (generation, issued_at, expires, app, link_sig)".into(),
            ));
        };
        let binding = LinkBinding {
            app: link_app.to_owned(),
            generation: link_generation,
            key: link.key.clone(),
            issued_at,
            expires,
        };
        if !signer.verify(&binding.signed_bytes(), &sig) {
            return Err(VerifyError::BrokenChain(id));
        }
        if link_app != app {
            return Err(bad(format!("it is bound to app `{link_app}`, not `{app}`")));
        }
        if let Some(previous) = generation {
            if link_generation != previous + 1 {
                return Err(bad(format!(
                    "generation {link_generation} does not follow {previous}"
                )));
            }
        }
        if issued_at < issued {
            return Err(bad("it was issued before the key that signed it".into()));
        }
        if signer_expires.is_some_and(|e| issued_at > e) {
            return Err(bad(
                "it was issued after the key that signed it expired (a retired key cannot extend the chain)"
                    .into(),
            ));
        }
        if expires < issued_at || expires - issued_at > MAX_KEY_LIFETIME {
            return Err(bad(format!(
                "it claims to be valid for more than {} days",
                MAX_KEY_LIFETIME / 86_400
            )));
        }
        generation = Some(link_generation);
        signer_expires = Some(expires);
        issued = issued_at;
        generations.push((generation, id));
        signer = *key;
    }
    // 2. The signature over the exact payload bytes, by the newest key.
    let payload = STANDARD
        .decode(&envelope.payload)
        .map_err(|_| VerifyError::Malformed("payload is not base64".into()))?;
    let signer_id = key_id(&signer);
    let signature = envelope
        .signatures
        .iter()
        .find(|s| s.keyid == signer_id)
        .and_then(|s| decode_sig(&s.sig))
        .ok_or(VerifyError::BadSignature)?;
    if !signer.verify(&pae(&envelope.payload_type, &payload), &signature) {
        return Err(VerifyError::BadSignature);
    }
    // 3. Only now parse what was signed.
    let manifest: Manifest = serde_json::from_slice(&payload)
        .map_err(|e| VerifyError::Malformed(format!("payload is not a manifest: {e}")))?;
    if manifest.kind != MANIFEST_TYPE {
        return Err(VerifyError::Malformed(format!(
            "type is not {MANIFEST_TYPE}"
        )));
    }
    if manifest.app != app {
        return Err(VerifyError::WrongApp {
            expected: app.to_owned(),
            found: manifest.app.clone(),
        });
    }
    if signer_expires.is_some_and(|e| manifest.issued_at > e) {
        return Err(VerifyError::BadLink {
            key: signer_id.clone(),
            reason: "it signed a manifest issued after it expired".into(),
        });
    }
    let hash = manifest_hash(&payload);
    // 4. prev form; 5. against what was accepted before.
    match (manifest.version, &manifest.prev) {
        (0, _) => return Err(VerifyError::Malformed("version 0".into())),
        (1, Some(_)) => {
            return Err(VerifyError::PrevMismatch(
                "version 1 must have prev null".into(),
            ));
        }
        (v, None) if v > 1 => {
            return Err(VerifyError::PrevMismatch(format!(
                "version {v} has no prev"
            )));
        }
        _ => {}
    }
    if let Some(seen) = state {
        if seen.app != manifest.app {
            return Err(VerifyError::WrongApp {
                expected: seen.app.clone(),
                found: manifest.app.clone(),
            });
        }
        if manifest.version < seen.version || manifest.issued_at < seen.issued_at {
            return Err(VerifyError::Rollback {
                version: manifest.version,
                issued_at: manifest.issued_at,
                seen_version: seen.version,
                seen_issued_at: seen.issued_at,
            });
        }
        if manifest.version == seen.version && hash != seen.hash {
            return Err(VerifyError::Fork(manifest.version));
        }
        if seen.key_generation > 0 {
            let newest = generation.unwrap_or(0);
            if newest < seen.key_generation {
                return Err(VerifyError::ChainFork(format!(
                    "the chain ends at key generation {newest}, but generation {} was accepted before",
                    seen.key_generation
                )));
            }
            let at_seen = generations
                .iter()
                .find(|(g, _)| *g == Some(seen.key_generation));
            if let Some((_, id)) = at_seen {
                if *id != seen.keyid {
                    return Err(VerifyError::ChainFork(format!(
                        "key generation {} is {id} here, but {} was accepted before",
                        seen.key_generation, seen.keyid
                    )));
                }
            }
        }
        if manifest.version == seen.version + 1 && manifest.prev.as_deref() != Some(&seen.hash) {
            return Err(VerifyError::PrevMismatch(format!(
                "version {} names prev {}, but version {} was {}",
                manifest.version,
                manifest.prev.as_deref().unwrap_or("null"),
                seen.version,
                seen.hash
            )));
        }
    }
    // 6. Freshness: an expired manifest means updates are being withheld.
    if now >= manifest.expires {
        return Err(VerifyError::Freeze {
            expires: manifest.expires,
            now,
        });
    }
    let state = ClientState {
        app: manifest.app.clone(),
        version: manifest.version,
        issued_at: manifest.issued_at,
        hash: hash.clone(),
        key_generation: generation.unwrap_or(0),
        keyid: signer_id.clone(),
    };
    Ok(Verified {
        manifest,
        hash,
        signed_by: signer_id,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_binding_is_the_json_docs_pinning_md_shows() {
        let binding = LinkBinding {
            app: "ios-banking".into(),
            generation: 2,
            key: "ab/+cd==".into(),
            issued_at: 1826352000,
            expires: 1857888000,
        };
        let expected = br#"{"app":"ios-banking","generation":2,"key":"ab/+cd==","issued_at":1826352000,"expires":1857888000}"#;
        assert_eq!(binding.signed_bytes(), pae(LINK_PAYLOAD_TYPE, expected));
    }

    #[test]
    fn pae_matches_dsse() {
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn manifest_keys_parse_in_every_form() {
        let key = tresor_crypto::sign::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let pem = manifest_key_pem(&key);
        assert_eq!(parse_manifest_key(pem.as_bytes()).unwrap(), key);
        assert_eq!(
            parse_manifest_key(STANDARD.encode(key.as_bytes()).as_bytes()).unwrap(),
            key
        );
        assert!(parse_manifest_key(b"nope").is_err());
    }
}
