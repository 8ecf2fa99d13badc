//! Pinned private keys on their way to a TLS terminator, sealed to its identity.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tresor_crypto::LengthPrefixed;
use tresor_crypto::identity::CustodianIdentity;
use zeroize::Zeroizing;

use super::keys::{KeyAlgorithm, PrivateKey, pkcs8_from_pem};
use super::{PinError, spki};

/// The sealed-box purpose of a delivered key.
pub const DELIVERY_PURPOSE: &str = "tresor-pin-key-delivery-v1";
/// The `type` of a delivered key.
pub const DELIVERY_TYPE: &str = "tresor-delivered-pin-key-v1";

/// A pinned private key sealed to a TLS terminator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveredKey {
    /// `tresor-delivered-pin-key-v1`.
    #[serde(rename = "type")]
    pub kind: String,
    /// App.
    pub app: String,
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub algorithm: String,
    /// Pin of the key inside.
    pub pin: String,
    /// The terminator it is sealed to (its identity name).
    pub recipient: String,
    /// base64 sealed box (docs/format.md, section 7) of the PKCS#8 DER private key; the AAD
    /// binds the app, key id, algorithm and pin.
    pub sealed: String,
}

/// What a delivered key's sealed box is bound to.
pub fn delivery_context(app: &str, kid: &str, algorithm: &str, pin: &str) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(app.as_bytes())
        .bytes(kid.as_bytes())
        .bytes(algorithm.as_bytes())
        .bytes(pin.as_bytes())
}

/// Opens a delivered key with the terminator's identity; returns the PKCS#8 PEM private key,
/// after checking it is the key whose pin the delivery names.
pub fn open_delivered_key(
    identity: &CustodianIdentity,
    delivered: &DeliveredKey,
) -> Result<Zeroizing<String>, PinError> {
    if delivered.kind != DELIVERY_TYPE {
        return Err(PinError::Delivery(format!("type is not {DELIVERY_TYPE}")));
    }
    let algorithm = KeyAlgorithm::from_name(&delivered.algorithm)
        .ok_or_else(|| PinError::Delivery("unknown algorithm".into()))?;
    let sealed = STANDARD
        .decode(&delivered.sealed)
        .map_err(|_| PinError::Delivery("sealed is not base64".into()))?;
    let context = delivery_context(
        &delivered.app,
        &delivered.kid,
        &delivered.algorithm,
        &delivered.pin,
    );
    let pkcs8 = identity
        .open(DELIVERY_PURPOSE, context.as_slice(), &sealed)
        .map_err(|e| PinError::Delivery(e.to_string()))?;
    let key = PrivateKey::from_pkcs8(algorithm, Zeroizing::new(pkcs8.to_vec()))?;
    if spki::pin_of_spki(&key.spki_der) != delivered.pin {
        return Err(PinError::Delivery(
            "the key inside does not have the pin the delivery names".into(),
        ));
    }
    Ok(key.to_pem())
}

/// Checks that a PEM private key is the one with `pin` (for operators checking a terminator).
pub fn pem_key_pin(pem: &str, algorithm: KeyAlgorithm) -> Result<String, PinError> {
    let key = PrivateKey::from_pkcs8(algorithm, pkcs8_from_pem(pem)?)?;
    Ok(spki::pin_of_spki(&key.spki_der))
}
