//! Property: whatever sequence of encrypt / rotate / rewrap / min-version changes / trim /
//! tenant KEK rotation / seal-and-unseal a key goes through, every ciphertext ever issued keeps
//! decrypting to its plaintext — unless its version was deliberately made unusable (raised
//! `min_decryption_version`, or trimmed), and then the error says exactly that. Configuration
//! changes are accepted or refused exactly as Vault's transit engine would (a small model of
//! its rules runs alongside).

use crate::common::TestVault;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tresor_core::CiphertextError;
use tresor_core::DecryptRequest;
use tresor_core::EncryptRequest;
use tresor_core::Error;
use tresor_core::KeySpec;
use tresor_core::ProtectionLevel;
use tresor_wire::keys::KeyConfigUpdate;

const T: &str = "prop";

#[derive(Debug, Clone)]
enum Op {
    Encrypt {
        plaintext: Vec<u8>,
        context: Vec<u8>,
        associated_data: Option<Vec<u8>>,
        version: Option<Pick>,
    },
    Rotate,
    Rewrap {
        pick: usize,
        version: Option<Pick>,
    },
    MinDecryption(Pick),
    MinEncryption(Pick),
    /// Both minimums to the same recent version in one update.
    Retire(Pick),
    Trim(Pick),
    RotateKek,
    /// Seal and unseal: every cached key is dropped and read back from storage.
    Reload,
}

fn plaintext() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..=64),
        1 => vec(any::<u8>(), 0..=64 * 1024),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (
            plaintext(),
            vec(any::<u8>(), 1..32),
            option::of(vec(any::<u8>(), 0..32)),
            option::weighted(0.3, any::<Pick>()),
        )
            .prop_map(|(plaintext, context, associated_data, version)| Op::Encrypt {
                plaintext,
                context,
                associated_data,
                version,
            }),
        4 => Just(Op::Rotate),
        2 => (any::<usize>(), option::weighted(0.3, any::<Pick>()))
            .prop_map(|(pick, version)| Op::Rewrap { pick, version }),
        2 => any::<Pick>().prop_map(Op::MinDecryption),
        2 => any::<Pick>().prop_map(Op::MinEncryption),
        3 => any::<Pick>().prop_map(Op::Retire),
        3 => any::<Pick>().prop_map(Op::Trim),
        1 => Just(Op::RotateKek),
        1 => Just(Op::Reload),
    ]
}

/// A version number chosen relative to the key's latest version when the operation runs:
/// 0 ..= latest + 1, so that most choices are in range and some are just beyond it.
type Pick = u8;

fn pick_version(pick: Pick, model: &Model) -> u32 {
    u32::from(pick) % (model.latest + 2)
}

/// The key's version state, as Vault's transit engine would have it.
#[derive(Debug, Clone, Copy)]
struct Model {
    latest: u32,
    min_decryption: u32,
    min_encryption: u32,
    min_available: u32,
}

impl Model {
    /// The version an encryption with `requested` uses, or None if it must be refused.
    fn encryption_version(&self, requested: Option<u32>) -> Option<u32> {
        let version = requested.filter(|v| *v != 0).unwrap_or(self.latest);
        (version <= self.latest
            && version >= self.min_encryption
            && version >= self.min_decryption
            && version >= self.min_available)
            .then_some(version)
    }

    fn configure(&self, decryption: Option<u32>, encryption: Option<u32>) -> Option<Model> {
        let mut next = *self;
        if let Some(min) = decryption {
            let min = min.max(1);
            if min > self.latest {
                return None;
            }
            next.min_decryption = min;
        }
        if let Some(min) = encryption {
            if min > self.latest {
                return None;
            }
            next.min_encryption = min;
        }
        if next.min_encryption != 0 && next.min_encryption < next.min_decryption {
            return None;
        }
        if next.min_available > 0
            && (next.min_decryption < next.min_available
                || next.min_encryption < next.min_available)
        {
            return None;
        }
        Some(next)
    }

    fn trim(&self, min: u32) -> Option<Model> {
        let refused = min == 0
            || min < self.min_available
            || self.min_encryption == 0
            || min > self.min_encryption
            || min > self.min_decryption;
        (!refused).then_some(Model {
            min_available: min,
            ..*self
        })
    }
}

struct Issued {
    ciphertext: String,
    version: u32,
    plaintext: Vec<u8>,
    context: Option<Vec<u8>>,
    associated_data: Option<Vec<u8>>,
}

impl Issued {
    fn request(&self) -> DecryptRequest<'_> {
        DecryptRequest {
            ciphertext: &self.ciphertext,
            context: self.context.as_deref(),
            associated_data: self.associated_data.as_deref(),
        }
    }
}

struct Case {
    v: TestVault,
    level: ProtectionLevel,
    derived: bool,
    convergent: bool,
    model: Model,
    issued: Vec<Issued>,
}

impl Case {
    fn new(level: ProtectionLevel, derived: bool, convergent: bool) -> Self {
        let v = TestVault::new();
        v.tenant(T, level);
        v.key(
            T,
            "k",
            KeySpec {
                derived,
                convergent_encryption: convergent,
                ..Default::default()
            },
        );
        Case {
            v,
            level,
            derived,
            convergent,
            model: Model {
                latest: 1,
                min_decryption: 1,
                min_encryption: 0,
                min_available: 0,
            },
            issued: Vec::new(),
        }
    }

    fn apply(&mut self, op: Op) {
        let vault = &self.v.vault;
        match op {
            Op::Encrypt {
                plaintext,
                context,
                associated_data,
                version,
            } => {
                let version = version.map(|pick| pick_version(pick, &self.model));
                let context = self.derived.then_some(context);
                let request = EncryptRequest {
                    plaintext: &plaintext,
                    context: context.as_deref(),
                    associated_data: associated_data.as_deref(),
                    key_version: version,
                };
                let result = vault.encrypt(T, "k", &request);
                let Some(expected) = self.model.encryption_version(version) else {
                    assert_refused_version(result, "encrypt");
                    return;
                };
                let ciphertext = result.unwrap();
                assert!(ciphertext.text.starts_with(&format!("tresor:v{expected}:")));
                let again = vault.encrypt(T, "k", &request).unwrap();
                assert_eq!(
                    again == ciphertext,
                    self.convergent,
                    "deterministic exactly when convergent"
                );
                self.issued.push(Issued {
                    ciphertext: ciphertext.text,
                    version: expected,
                    plaintext,
                    context,
                    associated_data,
                });
            }
            Op::Rotate => {
                let info = vault.rotate_key(T, "k").unwrap();
                self.model.latest += 1;
                assert_eq!(info.latest_version, self.model.latest);
            }
            Op::Rewrap { pick, version } => {
                if self.issued.is_empty() {
                    return;
                }
                let version = version.map(|p| pick_version(p, &self.model));
                let source = &self.issued[pick % self.issued.len()];
                let result = vault.rewrap(T, "k", &source.request(), version);
                if source.version < self.model.min_decryption {
                    assert_below_min(result.map(|_| ()), source.version, &self.model);
                    return;
                }
                let Some(expected) = self.model.encryption_version(version) else {
                    assert_refused_version(result, "rewrap");
                    return;
                };
                let ciphertext = result.unwrap();
                assert!(ciphertext.text.starts_with(&format!("tresor:v{expected}:")));
                let rewrapped = Issued {
                    ciphertext: ciphertext.text,
                    version: expected,
                    plaintext: source.plaintext.clone(),
                    context: source.context.clone(),
                    associated_data: source.associated_data.clone(),
                };
                self.issued.push(rewrapped);
            }
            Op::MinDecryption(pick) => {
                let min = pick_version(pick, &self.model);
                let update = KeyConfigUpdate {
                    min_decryption_version: Some(min),
                    ..Default::default()
                };
                let next = self.model.configure(Some(min), None);
                self.configure(&update, next);
            }
            Op::MinEncryption(pick) => {
                let min = pick_version(pick, &self.model);
                let update = KeyConfigUpdate {
                    min_encryption_version: Some(min),
                    ..Default::default()
                };
                let next = self.model.configure(None, Some(min));
                self.configure(&update, next);
            }
            Op::Retire(pick) => {
                // Retire the older versions: both minimums to latest, latest - 1 or latest - 2.
                let min = self.model.latest.saturating_sub(u32::from(pick % 3));
                let update = KeyConfigUpdate {
                    min_decryption_version: Some(min),
                    min_encryption_version: Some(min),
                    ..Default::default()
                };
                let next = self.model.configure(Some(min), Some(min));
                self.configure(&update, next);
            }
            Op::Trim(pick) => {
                // Mostly within reach of a valid trim: 0 ..= min(min_enc, min_dec) + 1.
                let reach = self.model.min_encryption.min(self.model.min_decryption);
                let min = u32::from(pick) % (reach + 2);
                let result = vault.trim_key(T, "k", min);
                match self.model.trim(min) {
                    Some(next) => {
                        result.unwrap();
                        self.model = next;
                    }
                    None => assert!(
                        matches!(
                            result,
                            Err(Error::InvalidInput {
                                field: "min_available_version",
                                ..
                            })
                        ),
                        "trim to {min} with {:?}: {result:?}",
                        self.model
                    ),
                }
            }
            Op::RotateKek => {
                let result = vault.rotate_tenant_kek(T);
                if self.level == ProtectionLevel::One {
                    assert!(matches!(
                        result,
                        Err(Error::InvalidInput {
                            field: "tenant",
                            ..
                        })
                    ));
                } else {
                    result.unwrap();
                }
            }
            Op::Reload => {
                self.v.reload();
                if self.level == ProtectionLevel::Three {
                    assert!(matches!(
                        self.v.decrypt(T, "k", "tresor:v1:AAAA"),
                        Err(Error::TenantLocked(_))
                    ));
                    self.v.unlock(T, 0);
                }
            }
        }
    }

    fn configure(&mut self, update: &KeyConfigUpdate, next: Option<Model>) {
        let result = self.v.vault.configure_key(T, "k", update);
        match next {
            Some(next) => {
                result.unwrap();
                self.model = next;
            }
            None => assert!(
                matches!(result, Err(Error::InvalidInput { .. })),
                "{update:?} with {:?}: {result:?}",
                self.model
            ),
        }
    }

    /// Every issued ciphertext decrypts, or fails for exactly the reason the model gives; and
    /// the stored key description matches the model.
    fn check(&self) {
        let info = self.v.vault.key_info(T, "k").unwrap();
        let m = &self.model;
        assert_eq!(
            (
                info.latest_version,
                info.config.min_decryption_version,
                info.config.min_encryption_version,
                info.config.min_available_version,
            ),
            (
                m.latest,
                m.min_decryption,
                m.min_encryption,
                m.min_available
            )
        );
        assert_eq!(
            info.versions.keys().copied().collect::<Vec<_>>(),
            (m.min_available.max(1)..=m.latest).collect::<Vec<_>>(),
            "exactly the versions not trimmed are held"
        );
        for issued in &self.issued {
            let result = self.v.vault.decrypt(T, "k", &issued.request());
            if issued.version < m.min_decryption {
                assert_below_min(result.map(|_| ()), issued.version, m);
            } else {
                assert_eq!(
                    result.unwrap().as_slice(),
                    issued.plaintext.as_slice(),
                    "v{}",
                    issued.version
                );
            }
        }
    }

    /// Wrong associated data (or context) never decrypts.
    fn check_bindings(&self) {
        for issued in &self.issued {
            if issued.version < self.model.min_decryption {
                continue;
            }
            let mut associated_data = issued.associated_data.clone().unwrap_or_default();
            associated_data.push(0);
            let mut request = issued.request();
            request.associated_data = Some(&associated_data);
            assert!(matches!(
                self.v.vault.decrypt(T, "k", &request),
                Err(Error::Ciphertext(CiphertextError::Authentication))
            ));
            if let Some(context) = &issued.context {
                let mut other = context.clone();
                other[0] ^= 1;
                let mut request = issued.request();
                request.context = Some(&other);
                assert!(matches!(
                    self.v.vault.decrypt(T, "k", &request),
                    Err(Error::Ciphertext(CiphertextError::Authentication))
                ));
            }
        }
    }
}

#[track_caller]
fn assert_refused_version(result: Result<tresor_core::Versioned, Error>, what: &str) {
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput {
                field: "key_version",
                ..
            })
        ),
        "{what}: {result:?}"
    );
}

#[track_caller]
fn assert_below_min(result: Result<(), Error>, version: u32, model: &Model) {
    match result {
        Err(Error::Ciphertext(CiphertextError::BelowMinDecryption {
            version: v,
            min_decryption,
        })) => assert_eq!((v, min_decryption), (version, model.min_decryption)),
        other => panic!("v{version} with {model:?}: expected BelowMinDecryption, got {other:?}"),
    }
}

fn level() -> impl Strategy<Value = ProtectionLevel> {
    prop_oneof![
        Just(ProtectionLevel::One),
        Just(ProtectionLevel::Two),
        Just(ProtectionLevel::Three),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn issued_ciphertexts_stay_decryptable_unless_deliberately_retired(
        level in level(),
        derived in any::<bool>(),
        convergent in any::<bool>(),
        ops in vec(op(), 1..24),
    ) {
        let mut case = Case::new(level, derived, derived && convergent);
        for op in ops {
            case.apply(op);
            case.check();
        }
        case.check_bindings();
    }
}
