//! Sealed boxes: encrypt to a recipient's X25519 public key so that only the holder of the
//! matching secret can open it (docs/format.md, section 7). Used for root-key shares sent to
//! custodians and submitted back to the vault, for level-3 custody keys, and for pinned private
//! keys delivered to a TLS terminator.
//!
//! ```text
//! sealed = 0x01 ‖ ephemeral_public (32) ‖ nonce (12) ‖ AES-256-GCM-SIV ciphertext ‖ tag (16)
//! shared = X25519(ephemeral_secret, recipient_public)       (all-zero output refused)
//! key    = HKDF-SHA256(ikm = shared, salt = ephemeral_public ‖ recipient_public,
//!                      info = LP("tresor-sealed-box-v1") ‖ LP(purpose))
//! aad    = LP("tresor-sealed-box-v1") ‖ LP(purpose) ‖ LP(context)
//! ```
//! The purpose label keeps a box made for one use (say, a root share) from being accepted as
//! another (a tenant custody key), and `context` binds it to the object it belongs to.

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::aead::{AeadKey, OVERHEAD};
use super::kdf::derive_key_salted;
use super::{LengthPrefixed, random};

const VERSION: u8 = 1;
const LABEL: &[u8] = b"tresor-sealed-box-v1";
const HEADER_LEN: usize = 1 + 32;

/// Why a sealed box could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedBoxError {
    /// Not a sealed box at all.
    #[error("sealed box is malformed: {0}")]
    Malformed(&'static str),
    /// The box is intact in form but does not open with this key, purpose and context.
    #[error(
        "sealed box does not open: it was sealed to another key, for another purpose, or was altered"
    )]
    NotForThisKey,
    /// The recipient key is a low-order point, which would make the box readable by anyone.
    #[error("recipient public key is invalid (a low-order X25519 point)")]
    InvalidRecipient,
}

/// A recipient's X25519 public key: what a sealed box is sealed to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BoxPublicKey(PublicKey);

impl BoxPublicKey {
    /// The key from its 32 bytes, refusing the low-order points (a box sealed to one of them
    /// would be readable by anyone).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, SealedBoxError> {
        let key = PublicKey::from(bytes);
        if is_valid_recipient(&key) {
            Ok(BoxPublicKey(key))
        } else {
            Err(SealedBoxError::InvalidRecipient)
        }
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for BoxPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxPublicKey({})", crate::hex(self.0.as_bytes()))
    }
}

/// The secret that opens boxes sealed to its [`BoxPublicKey`]. Zeroized on drop.
pub struct BoxSecretKey {
    secret: StaticSecret,
    public: BoxPublicKey,
}

impl BoxSecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let secret = StaticSecret::from(*random::os_array::<32>());
        Self::from_secret(secret)
    }

    /// The key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self::from_secret(StaticSecret::from(*bytes))
    }

    fn from_secret(secret: StaticSecret) -> Self {
        let public = BoxPublicKey(PublicKey::from(&secret));
        BoxSecretKey { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> &BoxPublicKey {
        &self.public
    }

    /// The secret bytes, for writing into an encrypted file.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.secret.as_bytes()
    }

    /// Opens a box sealed to this key for `purpose` and `context`.
    pub fn open(
        &self,
        purpose: &str,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealedBoxError> {
        open(&self.secret, purpose, context, sealed)
    }
}

impl std::fmt::Debug for BoxSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxSecretKey({:?}, [REDACTED])", self.public)
    }
}

/// Seals `plaintext` to `recipient`.
pub fn seal(
    recipient: &BoxPublicKey,
    purpose: &str,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealedBoxError> {
    seal_to(&recipient.0, purpose, context, plaintext)
}

fn seal_to(
    recipient: &PublicKey,
    purpose: &str,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealedBoxError> {
    // Boxes carry root shares and custody keys: whoever could predict the ephemeral secret
    // could open them for as long as they are kept, so it comes from the OS (random.rs).
    let ephemeral = StaticSecret::from(*random::os_array::<32>());
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(recipient);
    // A low-order recipient key makes `shared` predictable: anyone could open the box.
    if !shared.was_contributory() {
        return Err(SealedBoxError::InvalidRecipient);
    }
    let key = box_key(shared.as_bytes(), &ephemeral_public, recipient, purpose);
    let mut out = Vec::with_capacity(HEADER_LEN + OVERHEAD + plaintext.len());
    out.push(VERSION);
    out.extend_from_slice(ephemeral_public.as_bytes());
    key.seal_into(aad(purpose, context).as_slice(), plaintext, &mut out);
    Ok(out)
}

fn open(
    secret: &StaticSecret,
    purpose: &str,
    context: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealedBoxError> {
    if sealed.len() < HEADER_LEN + OVERHEAD {
        return Err(SealedBoxError::Malformed("too short"));
    }
    if sealed[0] != VERSION {
        return Err(SealedBoxError::Malformed("unknown version"));
    }
    let ephemeral_public =
        PublicKey::from(<[u8; 32]>::try_from(&sealed[1..HEADER_LEN]).expect("32 bytes"));
    let shared = secret.diffie_hellman(&ephemeral_public);
    if !shared.was_contributory() {
        return Err(SealedBoxError::Malformed(
            "ephemeral key is a low-order point",
        ));
    }
    let key = box_key(
        shared.as_bytes(),
        &ephemeral_public,
        &PublicKey::from(secret),
        purpose,
    );
    key.open(aad(purpose, context).as_slice(), &sealed[HEADER_LEN..])
        .map_err(|_| SealedBoxError::NotForThisKey)
}

fn is_valid_recipient(key: &PublicKey) -> bool {
    let probe = StaticSecret::from([0x42; 32]);
    probe.diffie_hellman(key).was_contributory()
}

fn box_key(
    shared: &[u8; 32],
    ephemeral: &PublicKey,
    recipient: &PublicKey,
    purpose: &str,
) -> AeadKey {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let info = LengthPrefixed::new().bytes(LABEL).bytes(purpose.as_bytes());
    AeadKey::new(&derive_key_salted(shared, &salt, info.as_slice()))
}

fn aad(purpose: &str, context: &[u8]) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(LABEL)
        .bytes(purpose.as_bytes())
        .bytes(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (StaticSecret, PublicKey) {
        let secret = StaticSecret::from(*random::os_array::<32>());
        let public = PublicKey::from(&secret);
        (secret, public)
    }

    #[test]
    fn opens_only_for_recipient_purpose_and_context() {
        let (alice, alice_pub) = keypair();
        let (bob, _) = keypair();
        let sealed = seal_to(&alice_pub, "share", b"vault-1", b"secret share").unwrap();
        assert_eq!(
            open(&alice, "share", b"vault-1", &sealed)
                .unwrap()
                .as_slice(),
            b"secret share"
        );
        assert_eq!(
            open(&bob, "share", b"vault-1", &sealed),
            Err(SealedBoxError::NotForThisKey)
        );
        assert_eq!(
            open(&alice, "custody", b"vault-1", &sealed),
            Err(SealedBoxError::NotForThisKey)
        );
        assert_eq!(
            open(&alice, "share", b"vault-2", &sealed),
            Err(SealedBoxError::NotForThisKey)
        );
    }

    #[test]
    fn rejects_tampering_and_garbage() {
        let (alice, alice_pub) = keypair();
        let sealed = seal_to(&alice_pub, "p", b"", b"x").unwrap();
        for i in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(open(&alice, "p", b"", &bad).is_err(), "flip at {i}");
        }
        let mut bad = sealed.clone();
        bad[0] = 9;
        assert_eq!(
            open(&alice, "p", b"", &bad),
            Err(SealedBoxError::Malformed("unknown version"))
        );
        assert_eq!(
            open(&alice, "p", b"", &sealed[..40]),
            Err(SealedBoxError::Malformed("too short"))
        );
    }

    #[test]
    fn low_order_recipients_are_invalid() {
        assert!(!is_valid_recipient(&PublicKey::from([0u8; 32])));
        assert_eq!(
            seal_to(&PublicKey::from([0u8; 32]), "p", b"", b"x"),
            Err(SealedBoxError::InvalidRecipient)
        );
        assert!(BoxPublicKey::from_bytes([0u8; 32]).is_err());
        assert!(is_valid_recipient(&keypair().1));
    }
}
