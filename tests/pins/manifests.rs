//! Pinned-certificate rotation manifests in the library (issue 5): pins against an independent
//! tool, the full rotation drill on a fake clock with every manifest verified as a client does,
//! the invariants, compromise, CSRs and key delivery, exports read back by real parsers, and
//! refusals of bad input.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_core::Error;
use tresor_core::ManualClock;
use tresor_core::SledStore;
use tresor_core::Store;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_crypto::sign::VerifyingKey;
use tresor_server::pins::{Pins, PinsError};
use tresor_server::services::Services;
use tresor_wire::approvals::Dangerous;
use tresor_wire::custody::InitRequest;
use tresor_wire::pins::{
    self, ActivationMode, AppSpec, ClientState, Envelope, ExportFormat, KeyAlgorithm, KeySource,
    Manifest, PinError, PinState, Rule, SubdomainScope, VerifyError,
};

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;
const APP: &str = "ios-banking";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    vault: Vault,
    pins: Pins,
    services: Services,
    clock: Arc<ManualClock>,
    custodian: CustodianIdentity,
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path().join("data")).unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let vault = Vault::open(
        store.clone(),
        VaultOptions::new("test").with_clock(clock.clone()),
    )
    .unwrap();
    let custodian = CustodianIdentity::generate("alice").unwrap();
    vault
        .init(&InitRequest {
            custodians: vec![custodian.public().clone()],
            threshold: 1,
            four_eyes: None,
        })
        .unwrap();
    let share = vault
        .sealed_share("alice")
        .unwrap()
        .open(&custodian)
        .unwrap();
    vault.unseal(vec![share]).unwrap();
    let services = Services::new(vault.clone(), 3600);
    Fixture {
        _dir: dir,
        store,
        pins: services.pins.clone(),
        services,
        vault,
        clock,
        custodian,
    }
}

fn spec(hosts: &[&str]) -> AppSpec {
    AppSpec {
        hosts: hosts.iter().map(|h| pins::parse_host(h).unwrap()).collect(),
        max_update_lag: 30 * DAY,
        expires: 14 * DAY,
        enforce_until: 180 * DAY,
    }
}

impl Fixture {
    fn app(&self, hosts: &[&str]) {
        self.pins.create_pin_app(APP, &spec(hosts)).unwrap();
    }

    fn generate(&self, algorithm: KeyAlgorithm) -> String {
        self.pins
            .generate_pin_key(APP, algorithm)
            .unwrap()
            .key
            .unwrap()
            .kid
    }

    fn trust(&self) -> VerifyingKey {
        pins::parse_manifest_key(self.pins.manifest_keys().unwrap().public_key_pem.as_bytes())
            .unwrap()
    }

    fn latest(&self) -> String {
        self.pins.pin_manifest(APP, None).unwrap()
    }

    fn now(&self) -> u64 {
        use tresor_core::Clock;
        self.clock.now()
    }

    fn state_of(&self, kid: &str) -> PinState {
        self.pins
            .pin_app(APP)
            .unwrap()
            .keys
            .into_iter()
            .find(|k| k.kid == kid)
            .unwrap()
            .state
    }

    /// Two generated keys: the first manifest is signed once the second is staged.
    fn with_two_keys(&self) -> (String, String) {
        self.app(&["api.example.com:all"]);
        let a = self.generate(KeyAlgorithm::EcdsaP256);
        assert_eq!(self.pins.pin_app(APP).unwrap().manifest_version, None);
        let b = self.generate(KeyAlgorithm::EcdsaP256);
        assert_eq!(self.pins.pin_app(APP).unwrap().manifest_version, Some(1));
        (a, b)
    }
}

fn rule_of<T: std::fmt::Debug>(result: Result<T, PinsError>) -> Rule {
    match result {
        Err(PinsError::Pin(PinError::Rule { rule, detail })) => {
            assert!(!detail.is_empty());
            rule
        }
        other => panic!("expected a rule refusal, got {other:?}"),
    }
}

fn pin_error<T: std::fmt::Debug>(result: Result<T, PinsError>) -> PinError {
    match result {
        Err(PinsError::Pin(e)) => e,
        other => panic!("expected a pin error, got {other:?}"),
    }
}

fn payload(envelope_json: &str) -> (Envelope, Manifest) {
    let envelope: Envelope = serde_json::from_str(envelope_json).unwrap();
    let manifest = serde_json::from_slice(&STANDARD.decode(&envelope.payload).unwrap()).unwrap();
    (envelope, manifest)
}

/// What a client checks of every manifest beyond the signature: at least two accepted pins per
/// host, one of them a backup not serving.
fn assert_safe(manifest: &Manifest) {
    assert!(manifest.pins.len() >= 2, "{manifest:?}");
    assert!(manifest.pins.iter().all(|p| p.state.accepted()));
    assert!(manifest.pins.iter().any(|p| p.state == PinState::Staged));
}

#[test]
fn pins_match_openssl_for_every_algorithm_and_input() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pins");
    let expected = std::fs::read_to_string(dir.join("pins.txt")).unwrap();
    let f = setup();
    f.app(&["api.example.com"]);
    let mut checked = 0;
    for line in expected.lines() {
        let [algorithm, input, pin]: [&str; 3] =
            line.split(' ').collect::<Vec<_>>().try_into().unwrap();
        let (file, source) = match input {
            "certificate" => (format!("{algorithm}.cert.pem"), KeySource::Certificate),
            "csr" => (format!("{algorithm}.csr.pem"), KeySource::Csr),
            "public-key" => (format!("{algorithm}.pub.pem"), KeySource::PublicKey),
            other => panic!("unknown input {other}"),
        };
        let bytes = std::fs::read(dir.join(&file)).unwrap();
        let info = pins::public_key_from(source, &bytes).unwrap();
        assert_eq!(info.pin, pin, "{file}");
        assert_eq!(info.algorithm, algorithm, "{file}");
        // DER input gives the same pin as PEM.
        let (_, der) = pem_der(&bytes);
        assert_eq!(pins::public_key_from(source, &der).unwrap().pin, pin);
        // The vault stores and publishes that same pin.
        if input == "certificate" {
            let change = f.pins.import_pin_key(APP, source, &bytes).unwrap();
            assert_eq!(change.key.unwrap().pin, pin);
        } else {
            // The same key from another input is the same pin: refused as a duplicate.
            assert!(matches!(
                pin_error(f.pins.import_pin_key(APP, source, &bytes)),
                PinError::KeyExists { .. }
            ));
        }
        checked += 1;
    }
    assert_eq!(checked, 9);
    let (_, manifest) = payload(&f.latest());
    let published: Vec<&str> = manifest.pins.iter().map(|p| p.sha256.as_str()).collect();
    for line in expected.lines().filter(|l| l.contains(" certificate ")) {
        assert!(published.contains(&line.rsplit(' ').next().unwrap()));
    }
}

fn pem_der(pem: &[u8]) -> (String, Vec<u8>) {
    let text = std::str::from_utf8(pem).unwrap();
    let mut lines = text.lines();
    let label = lines
        .next()
        .unwrap()
        .trim_start_matches("-----BEGIN ")
        .trim_end_matches("-----")
        .to_owned();
    let body: String = lines.take_while(|l| !l.starts_with("-----END")).collect();
    (label, STANDARD.decode(body).unwrap())
}

#[test]
fn rotation_drill_on_a_fake_clock() {
    let f = setup();
    let (a, b) = f.with_two_keys();
    let trust = f.trust();
    let mut envelopes = vec![f.latest()];

    // Activation before the pin has been published for max_update_lag is refused, to the second.
    assert_eq!(
        rule_of(f.pins.activate_pin_key(APP, &a, ActivationMode::Lag)),
        Rule::PublishedForUpdateLag
    );
    f.clock.advance(30 * DAY - 1);
    assert_eq!(
        rule_of(f.pins.activate_pin_key(APP, &a, ActivationMode::Lag)),
        Rule::PublishedForUpdateLag
    );
    assert_eq!(f.state_of(&a), PinState::Staged);
    f.clock.advance(1);
    let change = f
        .pins
        .activate_pin_key(APP, &a, ActivationMode::Lag)
        .unwrap();
    assert_eq!(change.manifest_version, Some(2));
    envelopes.push(f.latest());

    // Stage the next key, let it age, promote it, then retire the old one in two steps.
    let c = f.generate(KeyAlgorithm::Ed25519);
    envelopes.push(f.latest());
    f.clock.advance(30 * DAY);
    f.pins
        .activate_pin_key(APP, &b, ActivationMode::Lag)
        .unwrap();
    envelopes.push(f.latest());
    f.pins.retire_pin_key(APP, &a).unwrap();
    assert_eq!(f.state_of(&a), PinState::Retiring);
    envelopes.push(f.latest());
    f.pins.retire_pin_key(APP, &a).unwrap();
    assert_eq!(f.state_of(&a), PinState::Retired);
    envelopes.push(f.latest());
    // Retiring destroyed the private key: nothing left in storage, nothing to deliver.
    assert_eq!(
        f.store.get(&format!("pins/private/{APP}/{a}")).unwrap(),
        None
    );
    assert!(matches!(
        pin_error(f.pins.pin_key_csr(APP, &a, "CN=api.example.com", &[])),
        PinError::NoPrivateKey { .. }
    ));

    // The server re-issues before expiry: nothing is due at first, then after half of `expires`.
    assert!(f.pins.reissue_due_pin_manifests().unwrap().is_empty());
    f.clock.advance(7 * DAY);
    assert_eq!(
        f.pins.reissue_due_pin_manifests().unwrap(),
        vec![(APP.to_owned(), 7)]
    );
    envelopes.push(f.latest());

    // A client that follows every manifest accepts each one, and each keeps >= 2 pins.
    let mut state: Option<ClientState> = None;
    for (i, envelope) in envelopes.iter().enumerate() {
        let (_, manifest) = payload(envelope);
        let verified = pins::verify(
            envelope.as_bytes(),
            &trust,
            APP,
            state.as_ref(),
            manifest.issued_at,
        )
        .unwrap_or_else(|e| panic!("manifest {} refused: {e}", i + 1));
        assert_eq!(verified.manifest.version, i as u64 + 1);
        assert_safe(&verified.manifest);
        state = Some(verified.state);
    }
    let (_, last) = payload(envelopes.last().unwrap());
    let kids: Vec<(&str, PinState)> = last
        .pins
        .iter()
        .map(|p| (p.kid.as_str(), p.state))
        .collect();
    assert_eq!(
        kids,
        vec![
            (b.as_str(), PinState::Active),
            (c.as_str(), PinState::Staged)
        ]
    );
    // Every stored version is served as signed, and the log chains all seven.
    for (i, envelope) in envelopes.iter().enumerate() {
        assert_eq!(
            &f.pins.pin_manifest(APP, Some(i as u64 + 1)).unwrap(),
            envelope
        );
    }
    assert_eq!(f.pins.verify_pin_log().unwrap(), 7);
    let log = f.pins.pin_log().unwrap();
    for (entry, envelope) in log.iter().zip(&envelopes) {
        let bytes = STANDARD.decode(payload(envelope).0.payload).unwrap();
        assert_eq!(entry.manifest_hash, pins::manifest::manifest_hash(&bytes));
    }

    let now = f.now();
    let state = state.unwrap();
    // An old manifest replayed is a rollback.
    assert!(matches!(
        pins::verify(envelopes[2].as_bytes(), &trust, APP, Some(&state), now),
        Err(VerifyError::Rollback {
            version: 3,
            seen_version: 7,
            ..
        })
    ));
    // An expired one is a freeze.
    assert!(matches!(
        pins::verify(envelopes[6].as_bytes(), &trust, APP, None, last.expires),
        Err(VerifyError::Freeze { .. })
    ));
    // A flipped byte anywhere in the payload fails the signature.
    let (envelope, _) = payload(&envelopes[6]);
    let bytes = STANDARD.decode(&envelope.payload).unwrap();
    for i in (0..bytes.len()).step_by(7) {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x01;
        let mut tampered = envelope.clone();
        tampered.payload = STANDARD.encode(&flipped);
        let json = serde_json::to_vec(&tampered).unwrap();
        assert_eq!(
            pins::verify(&json, &trust, APP, None, now),
            Err(VerifyError::BadSignature),
            "flip at {i}"
        );
    }
    // prev must chain to what was accepted; a second manifest for one version is a fork.
    let (_, v6) = payload(&envelopes[5]);
    let wrong_prev = ClientState {
        hash: format!("sha256:{}", "ab".repeat(32)),
        ..ClientState {
            app: APP.into(),
            version: 6,
            issued_at: v6.issued_at,
            hash: String::new(),
            key_generation: 0,
            keyid: String::new(),
        }
    };
    assert!(matches!(
        pins::verify(envelopes[6].as_bytes(), &trust, APP, Some(&wrong_prev), now),
        Err(VerifyError::PrevMismatch(_))
    ));
    let same_version = ClientState {
        version: 7,
        issued_at: last.issued_at,
        ..wrong_prev.clone()
    };
    assert_eq!(
        pins::verify(
            envelopes[6].as_bytes(),
            &trust,
            APP,
            Some(&same_version),
            now
        ),
        Err(VerifyError::Fork(7))
    );
    // A client that missed versions still accepts a newer one.
    let v5_state = pins::verify(envelopes[4].as_bytes(), &trust, APP, None, now - 8 * DAY)
        .unwrap()
        .state;
    assert!(pins::verify(envelopes[6].as_bytes(), &trust, APP, Some(&v5_state), now).is_ok());
    // Another app's state is not this app's.
    let other = ClientState {
        app: "android-banking".into(),
        ..v5_state
    };
    assert!(matches!(
        pins::verify(envelopes[6].as_bytes(), &trust, APP, Some(&other), now),
        Err(VerifyError::WrongApp { .. })
    ));
    // A key the app does not trust.
    let stranger = tresor_crypto::sign::SigningKey::from_bytes(&[9; 32]).verifying_key();
    assert!(matches!(
        pins::verify(envelopes[6].as_bytes(), &stranger, APP, None, now),
        Err(VerifyError::UntrustedKey(_))
    ));
    assert!(matches!(
        pins::verify(b"{\"payloadType\":1}", &trust, APP, None, now),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn early_activation_needs_custodian_approval() {
    let f = setup();
    let (a, _) = f.with_two_keys();
    assert!(f.pins.pin_activation_needs_override(APP, &a).unwrap());
    let approval = f
        .services
        .approvals
        .propose(
            Dangerous::ActivatePinEarly {
                app: APP.into(),
                kid: a.clone(),
            },
            "spiffe://test/release-manager",
        )
        .unwrap();
    assert!(approval.request.describe().contains(&a));
    // Nothing happens until the custodian signs.
    assert_eq!(f.state_of(&a), PinState::Staged);
    let outcome = f
        .services
        .decide(
            &approval.id,
            tresor_wire::approvals::Decision::Approve,
            tresor_server::approvals::Signer {
                custodian: "alice",
                signature: &approval.sign(&f.custodian),
                principal: "spiffe://test/custodian",
            },
        )
        .unwrap();
    assert!(
        matches!(&outcome.approval.state, tresor_wire::approvals::ApprovalState::Executed { outcome, .. } if outcome.contains("active early")),
        "{outcome:?}"
    );
    let app = f.pins.pin_app(APP).unwrap();
    let key = app.keys.iter().find(|k| k.kid == a).unwrap();
    assert_eq!(key.state, PinState::Active);
    assert_eq!(key.activation, Some(ActivationMode::Override));
    let (_, manifest) = payload(&f.latest());
    assert_eq!(manifest.version, 2);
    assert_safe(&manifest);
}

#[test]
fn invariants_refuse_before_signing_and_name_the_rule() {
    let f = setup();
    let (a, b) = f.with_two_keys();
    f.clock.advance(30 * DAY);
    f.pins
        .activate_pin_key(APP, &a, ActivationMode::Lag)
        .unwrap();
    let before = f.latest();

    // Retiring the only backup would leave one pin.
    let refused = f.pins.retire_pin_key(APP, &b);
    let message = refused.as_ref().unwrap_err().to_string();
    assert_eq!(rule_of(refused), Rule::TwoPinsPerHost);
    assert!(
        message.contains("two-pins-per-host") && message.contains("api.example.com"),
        "{message}"
    );
    // Activating the only backup would leave none that is not serving.
    assert_eq!(
        rule_of(f.pins.activate_pin_key(APP, &b, ActivationMode::Lag)),
        Rule::BackupNotServing
    );
    // Nothing was changed or signed by the refusals.
    assert_eq!(f.latest(), before);
    assert_eq!(f.state_of(&b), PinState::Staged);
    assert_eq!(f.pins.verify_pin_log().unwrap(), 2);

    // An active key is not removed: retire moves it to retiring, where it stays accepted.
    let c = f.generate(KeyAlgorithm::EcdsaP256);
    f.pins.retire_pin_key(APP, &a).unwrap();
    let (_, manifest) = payload(&f.latest());
    assert!(
        manifest
            .pins
            .iter()
            .any(|p| p.kid == a && p.state == PinState::Retiring)
    );
    // Life-cycle refusals.
    assert_eq!(
        rule_of(f.pins.activate_pin_key(APP, &a, ActivationMode::Lag)),
        Rule::LifeCycle
    );
    f.pins.retire_pin_key(APP, &a).unwrap();
    assert_eq!(rule_of(f.pins.retire_pin_key(APP, &a)), Rule::LifeCycle);
    assert_eq!(rule_of(f.pins.compromise_pin_key(APP, &a)), Rule::LifeCycle);
    // An unpublished key (no manifest yet) cannot be activated even with an override.
    f.pins
        .create_pin_app("fresh", &spec(&["x.example.com"]))
        .unwrap();
    let lone = f
        .pins
        .generate_pin_key("fresh", KeyAlgorithm::EcdsaP256)
        .unwrap()
        .key
        .unwrap()
        .kid;
    assert_eq!(
        rule_of(
            f.pins
                .activate_pin_key("fresh", &lone, ActivationMode::Override)
        ),
        Rule::PublishedForUpdateLag
    );
    let _ = c;
}

#[test]
fn compromise_promotes_the_published_backup_and_stages_a_new_one() {
    let f = setup();
    let (a, b) = f.with_two_keys();
    let trust = f.trust();
    f.clock.advance(30 * DAY);
    f.pins
        .activate_pin_key(APP, &a, ActivationMode::Lag)
        .unwrap();
    let state = pins::verify(f.latest().as_bytes(), &trust, APP, None, f.now())
        .unwrap()
        .state;
    f.clock.advance(60);
    let change = f.pins.compromise_pin_key(APP, &a).unwrap();
    assert_eq!(change.key.as_ref().unwrap().state, PinState::Compromised);
    assert_eq!(change.also.len(), 2);
    assert_eq!(change.also[0].kid, b);
    assert_eq!(change.also[0].state, PinState::Active);
    assert_eq!(change.also[0].activation, Some(ActivationMode::Emergency));
    let fresh = &change.also[1];
    assert_eq!(fresh.state, PinState::Staged);
    assert!(fresh.private_key);
    let verified = pins::verify(f.latest().as_bytes(), &trust, APP, Some(&state), f.now()).unwrap();
    assert_safe(&verified.manifest);
    assert!(verified.manifest.pins.iter().all(|p| p.kid != a));
    assert!(matches!(
        pin_error(f.pins.deliver_pin_key(APP, &a, f.custodian.public())),
        PinError::NoPrivateKey { .. }
    ));
    assert_eq!(
        f.store.get(&format!("pins/private/{APP}/{a}")).unwrap(),
        None
    );
}

#[test]
fn csr_verifies_and_a_delivered_key_opens_only_with_the_terminator_identity() {
    use ring::signature as sig;
    use x509_cert::der::{DecodePem, Encode};
    let f = setup();
    f.app(&["api.example.com:all"]);
    let terminator = CustodianIdentity::generate("edge-1").unwrap();
    let impostor = CustodianIdentity::generate("edge-1").unwrap();
    for algorithm in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
    ] {
        let key = f
            .pins
            .generate_pin_key(APP, algorithm)
            .unwrap()
            .key
            .unwrap();
        assert_eq!(key.algorithm, algorithm.name());
        let pem = f
            .pins
            .pin_key_csr(APP, &key.kid, "CN=api.example.com,O=Example Bank", &[])
            .unwrap();
        // Parse and check the CSR here, with ring directly: signature over the request info by
        // the public key it carries, and that key is the pinned one.
        let request = x509_cert::request::CertReq::from_pem(pem.as_bytes()).unwrap();
        let info = request.info.to_der().unwrap();
        let spki_der = request.info.public_key.to_der().unwrap();
        assert_eq!(pins::pin_of_spki(&spki_der), key.pin);
        assert_eq!(
            request.info.subject.to_string(),
            "CN=api.example.com,O=Example Bank"
        );
        // By default it asks for the app's hosts as subjectAltNames (with the wildcard for
        // scope `all`): the extension request attribute carries both names.
        let attributes = request.info.attributes.to_der().unwrap();
        let contains = |needle: &[u8]| attributes.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"*.api.example.com"));
        assert!(contains(b"\x82\x0fapi.example.com"));
        let public = request
            .info
            .public_key
            .subject_public_key
            .as_bytes()
            .unwrap();
        let algorithm_check: &dyn sig::VerificationAlgorithm = match algorithm {
            KeyAlgorithm::EcdsaP256 => &sig::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::Ed25519 => &sig::ED25519,
            KeyAlgorithm::Rsa2048 => &sig::RSA_PKCS1_2048_8192_SHA256,
        };
        sig::UnparsedPublicKey::new(algorithm_check, public)
            .verify(&info, request.signature.as_bytes().unwrap())
            .unwrap_or_else(|_| panic!("{} CSR signature does not verify", algorithm.name()));
        // A CSR the vault made is also accepted as an import source elsewhere (and verifies).
        assert_eq!(
            pins::public_key_from(KeySource::Csr, pem.as_bytes())
                .unwrap()
                .pin,
            key.pin
        );

        let delivered = f
            .pins
            .deliver_pin_key(APP, &key.kid, terminator.public())
            .unwrap();
        assert!(
            !serde_json::to_string(&delivered)
                .unwrap()
                .contains("PRIVATE")
        );
        let opened = pins::open_delivered_key(&terminator, &delivered).unwrap();
        assert!(opened.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(pins::pem_key_pin(&opened, algorithm).unwrap(), key.pin);
        // Another identity (even with the same name) cannot open it, nor can anyone open a
        // delivery whose app, key id or pin was edited.
        assert!(matches!(
            pins::open_delivered_key(&impostor, &delivered),
            Err(PinError::Delivery(_))
        ));
        for edit in [
            |d: &mut pins::DeliveredKey| d.kid = "k-000000000000".into(),
            |d: &mut pins::DeliveredKey| d.app = "other".into(),
            |d: &mut pins::DeliveredKey| d.pin = STANDARD.encode([0u8; 32]),
        ] {
            let mut edited = delivered.clone();
            edit(&mut edited);
            assert!(pins::open_delivered_key(&terminator, &edited).is_err());
        }
    }
    // Explicit names replace the default; they must be DNS names.
    let kid = f.pins.pin_app(APP).unwrap().keys[0].kid.clone();
    let pem = f
        .pins
        .pin_key_csr(APP, &kid, "CN=edge", &["edge.example.net".into()])
        .unwrap();
    let request = x509_cert::request::CertReq::from_pem(pem.as_bytes()).unwrap();
    let attributes = request.info.attributes.to_der().unwrap();
    assert!(attributes.windows(16).any(|w| w == b"edge.example.net"));
    assert!(!attributes.windows(15).any(|w| w == b"api.example.com"));
    assert!(matches!(
        pin_error(
            f.pins
                .pin_key_csr(APP, &kid, "CN=edge", &["bad name".into()])
        ),
        PinError::Input { field: "dns", .. }
    ));
    // The CSR subject is checked.
    let kid = f.pins.pin_app(APP).unwrap().keys[0].kid.clone();
    assert!(matches!(
        pin_error(f.pins.pin_key_csr(APP, &kid, "not a name", &[])),
        PinError::Input {
            field: "subject",
            ..
        }
    ));
    assert!(matches!(
        pin_error(f.pins.pin_key_csr(APP, &kid, "", &[])),
        PinError::Input {
            field: "subject",
            ..
        }
    ));
}

fn export_fixture() -> (Fixture, String, String) {
    let f = setup();
    f.app(&["api.example.com:all", "cdn.example.com"]);
    let a = f.generate(KeyAlgorithm::EcdsaP256);
    let b = f.generate(KeyAlgorithm::EcdsaP256);
    let gone = f.generate(KeyAlgorithm::Ed25519);
    f.pins.retire_pin_key(APP, &gone).unwrap();
    f.clock.advance(30 * DAY);
    f.pins
        .activate_pin_key(APP, &a, ActivationMode::Lag)
        .unwrap();
    (f, a, b)
}

fn accepted_pins(f: &Fixture) -> Vec<String> {
    let (_, manifest) = payload(&f.latest());
    let mut pins: Vec<String> = manifest.pins.into_iter().map(|p| p.sha256).collect();
    pins.sort();
    pins
}

#[test]
fn android_export_parses_as_xml_with_exactly_the_accepted_pins() {
    use quick_xml::events::Event;
    let (f, _, _) = export_fixture();
    let xml = f.pins.export_pins(APP, ExportFormat::Android).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut pins, mut domains, mut expiration, mut path) =
        (Vec::new(), Vec::new(), None, Vec::new());
    let mut attrs = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (
                            String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                            a.unescape_value().unwrap().into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                if name == "pin-set" {
                    expiration = attrs
                        .iter()
                        .find(|(k, _)| k == "expiration")
                        .map(|(_, v)| v.clone());
                }
                path.push(name);
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.decode().unwrap().trim().to_owned();
                match path.last().map(String::as_str) {
                    Some("pin") => {
                        assert_eq!(attrs, vec![("digest".into(), "SHA-256".into())]);
                        pins.push(text);
                    }
                    Some("domain") => domains.push((text, attrs.clone())),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    pins.sort();
    assert_eq!(pins, accepted_pins(&f));
    assert_eq!(pins.len(), 2);
    assert_eq!(
        domains,
        vec![
            (
                "api.example.com".into(),
                vec![("includeSubdomains".into(), "true".into())]
            ),
            (
                "cdn.example.com".into(),
                vec![("includeSubdomains".into(), "false".into())]
            ),
        ]
    );
    let (_, manifest) = payload(&f.latest());
    let expiration = expiration.unwrap();
    // enforce_until as a date: the day it falls on (UTC).
    let days = manifest.enforce_until / DAY;
    let (y, rest) = expiration.split_at(4);
    assert!(y.parse::<u32>().unwrap() >= 2027, "{expiration}");
    assert_eq!(rest.len(), 6);
    assert_eq!(days, (manifest.issued_at + 180 * DAY) / DAY);
}

fn plist_dict(xml: &str) -> plist::Dictionary {
    plist::Value::from_reader_xml(xml.as_bytes())
        .unwrap()
        .into_dictionary()
        .unwrap()
}

#[test]
fn trustkit_and_nspinneddomains_exports_parse_as_plists() {
    let (f, _, _) = export_fixture();
    let expected = accepted_pins(&f);

    let trustkit = plist_dict(&f.pins.export_pins(APP, ExportFormat::TrustKit).unwrap());
    let domains = trustkit["TSKPinnedDomains"].as_dictionary().unwrap();
    assert_eq!(domains.len(), 2);
    for (host, all) in [("api.example.com", true), ("cdn.example.com", false)] {
        let config = domains[host].as_dictionary().unwrap();
        assert_eq!(config["TSKIncludeSubdomains"].as_boolean(), Some(all));
        assert_eq!(config["TSKEnforcePinning"].as_boolean(), Some(true));
        assert!(
            config["TSKExpirationDate"]
                .as_string()
                .unwrap()
                .starts_with("20")
        );
        let mut hashes: Vec<String> = config["TSKPublicKeyHashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap().to_owned())
            .collect();
        hashes.sort();
        assert_eq!(hashes, expected);
    }

    let ats = plist_dict(
        &f.pins
            .export_pins(APP, ExportFormat::NsPinnedDomains)
            .unwrap(),
    );
    let pinned = ats["NSAppTransportSecurity"].as_dictionary().unwrap()["NSPinnedDomains"]
        .as_dictionary()
        .unwrap();
    for (host, all) in [("api.example.com", true), ("cdn.example.com", false)] {
        let config = pinned[host].as_dictionary().unwrap();
        assert_eq!(config["NSIncludesSubdomains"].as_boolean(), Some(all));
        let mut identities: Vec<String> = config["NSPinnedLeafIdentities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let d = v.as_dictionary().unwrap();
                assert_eq!(d.len(), 1);
                d["SPKI-SHA256-BASE64"].as_string().unwrap().to_owned()
            })
            .collect();
        identities.sort();
        assert_eq!(identities, expected);
    }
}

#[test]
fn okhttp_and_json_exports() {
    let (f, _, _) = export_fixture();
    let expected = accepted_pins(&f);
    let code = f.pins.export_pins(APP, ExportFormat::OkHttp).unwrap();
    let mut adds: Vec<(String, String)> = code
        .lines()
        .filter_map(|l| l.trim().strip_prefix(".add(\""))
        .map(|rest| {
            let (pattern, rest) = rest.split_once("\", \"").unwrap();
            let pin = rest.strip_suffix("\")").unwrap();
            (
                pattern.to_owned(),
                pin.strip_prefix("sha256/").unwrap().to_owned(),
            )
        })
        .collect();
    adds.sort();
    let mut want = Vec::new();
    for pattern in ["**.api.example.com", "cdn.example.com"] {
        for pin in &expected {
            want.push((pattern.to_owned(), pin.clone()));
        }
    }
    want.sort();
    assert_eq!(adds, want);
    assert!(code.contains("CertificatePinner.Builder()") && code.trim_end().ends_with(".build()"));

    let json = f.pins.export_pins(APP, ExportFormat::Json).unwrap();
    let verified = pins::verify(json.as_bytes(), &f.trust(), APP, None, f.now()).unwrap();
    let mut pins: Vec<String> = verified
        .manifest
        .pins
        .into_iter()
        .map(|p| p.sha256)
        .collect();
    pins.sort();
    assert_eq!(pins, expected);
}

#[test]
fn exports_refuse_what_their_platform_cannot_express() {
    let f = setup();
    f.app(&["api.example.com:one"]);
    f.generate(KeyAlgorithm::EcdsaP256);
    f.generate(KeyAlgorithm::EcdsaP256);
    for format in [
        ExportFormat::Android,
        ExportFormat::TrustKit,
        ExportFormat::NsPinnedDomains,
    ] {
        match pin_error(f.pins.export_pins(APP, format)) {
            PinError::Export {
                format: name,
                reason,
            } => {
                assert_eq!(name, format.name());
                assert!(reason.contains("scope `one`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    // OkHttp can: the host itself and exactly one label below it.
    let code = f.pins.export_pins(APP, ExportFormat::OkHttp).unwrap();
    assert!(code.contains(".add(\"api.example.com\", \"sha256/"));
    assert!(code.contains(".add(\"*.api.example.com\", \"sha256/"));
    assert!(!code.contains("**."));

    // TrustKit needs two pins; a (hand-made) manifest with one is refused.
    let (envelope, mut manifest) = payload(&f.latest());
    manifest.pins.truncate(1);
    manifest.hosts[0].subdomains = SubdomainScope::All;
    match pins::export(ExportFormat::TrustKit, &manifest, &envelope) {
        Err(PinError::Export { reason, .. }) => {
            assert!(reason.contains("at least 2 pins"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // No manifest yet: nothing to export.
    f.pins
        .create_pin_app("empty", &spec(&["e.example.com"]))
        .unwrap();
    assert!(matches!(
        pin_error(f.pins.export_pins("empty", ExportFormat::Android)),
        PinError::ManifestNotFound { .. }
    ));
}

#[test]
fn manifest_key_rotates_by_chain() {
    let f = setup();
    f.with_two_keys();
    let first = f.trust();
    let before = f.latest();
    let rotated = f.pins.rotate_manifest_key().unwrap();
    assert_eq!(rotated.key_chain.len(), 2);
    // Rotation re-signed the manifest with the new key; an app with the first key follows.
    let after = f.latest();
    assert_ne!(after, before);
    let verified = pins::verify(after.as_bytes(), &first, APP, None, f.now()).unwrap();
    assert_eq!(verified.signed_by, rotated.keyid);
    let newest = pins::parse_manifest_key(rotated.public_key_pem.as_bytes()).unwrap();
    assert!(pins::verify(after.as_bytes(), &newest, APP, None, f.now()).is_ok());
    // A forged successor (signed by nobody in the chain) breaks it.
    let mut envelope: Envelope = serde_json::from_str(&after).unwrap();
    envelope.key_chain[1].link_sig = Some(STANDARD.encode([7u8; 64]));
    assert!(matches!(
        pins::verify(
            &serde_json::to_vec(&envelope).unwrap(),
            &first,
            APP,
            None,
            f.now()
        ),
        Err(VerifyError::BrokenChain(_))
    ));
    // A manifest signed by the old key is not accepted as signed by the new one.
    let old: Envelope = serde_json::from_str(&before).unwrap();
    let mut relabelled = old.clone();
    relabelled.key_chain = serde_json::from_str::<Envelope>(&after).unwrap().key_chain;
    assert_eq!(
        pins::verify(
            &serde_json::to_vec(&relabelled).unwrap(),
            &first,
            APP,
            None,
            f.now()
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn bad_inputs_are_refused() {
    let f = setup();
    // App settings.
    for (name, spec) in [
        ("Bad", spec(&["api.example.com"])),
        ("sys", spec(&["api.example.com"])),
        (
            "ok",
            AppSpec {
                hosts: vec![],
                ..spec(&["a.example.com"])
            },
        ),
        (
            "ok",
            AppSpec {
                max_update_lag: 0,
                ..spec(&["a.example.com"])
            },
        ),
        (
            "ok",
            AppSpec {
                expires: 60,
                ..spec(&["a.example.com"])
            },
        ),
        (
            "ok",
            AppSpec {
                enforce_until: DAY,
                ..spec(&["a.example.com"])
            },
        ),
        ("ok", spec(&["a.example.com", "a.example.com:all"])),
    ] {
        assert!(matches!(
            pin_error(f.pins.create_pin_app(name, &spec)),
            PinError::Input { .. }
        ));
    }
    assert!(pins::parse_host("*.example.com").is_err());
    f.app(&["api.example.com"]);
    assert!(matches!(
        pin_error(f.pins.create_pin_app(APP, &spec(&["api.example.com"]))),
        PinError::AppExists(_)
    ));
    // Wrong app, wrong key.
    assert!(matches!(
        pin_error(f.pins.generate_pin_key("nope", KeyAlgorithm::EcdsaP256)),
        PinError::AppNotFound(_)
    ));
    assert!(matches!(
        pin_error(
            f.pins
                .activate_pin_key(APP, "k-000000000000", ActivationMode::Lag)
        ),
        PinError::KeyNotFound { .. }
    ));
    assert!(matches!(
        pin_error(f.pins.pin_manifest(APP, None)),
        PinError::ManifestNotFound { .. }
    ));
    // Malformed key material.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pins");
    let csr = std::fs::read(dir.join("ecdsa-p256.csr.pem")).unwrap();
    let (_, mut der) = pem_der(&csr);
    let last = der.len() - 3;
    der[last] ^= 0x01; // inside the signature
    assert!(matches!(
        pin_error(f.pins.import_pin_key(APP, KeySource::Csr, &der)),
        PinError::Input { .. }
    ));
    let cert = std::fs::read(dir.join("rsa-2048.cert.pem")).unwrap();
    for (source, input) in [
        (KeySource::Certificate, b"garbage".to_vec()),
        (KeySource::PublicKey, cert.clone()),
        (KeySource::Csr, cert.clone()),
        (KeySource::Certificate, cert[..cert.len() / 2].to_vec()),
    ] {
        assert!(matches!(
            pin_error(f.pins.import_pin_key(APP, source, &input)),
            PinError::Input { .. }
        ));
    }
    // An imported key has no private key here: no CSR, no delivery.
    let kid = f
        .pins
        .import_pin_key(APP, KeySource::Certificate, &cert)
        .unwrap()
        .key
        .unwrap()
        .kid;
    assert!(matches!(
        pin_error(f.pins.deliver_pin_key(APP, &kid, f.custodian.public())),
        PinError::NoPrivateKey { .. }
    ));
    // Sealed: nothing is served.
    f.vault.seal();
    assert!(matches!(
        f.pins.pin_app(APP),
        Err(PinsError::Vault(Error::Sealed))
    ));
    assert!(matches!(
        f.pins.pin_manifest(APP, None),
        Err(PinsError::Vault(Error::Sealed))
    ));
}

#[test]
fn pins_survive_root_rotation_and_restart() {
    let f = setup();
    let (a, _) = f.with_two_keys();
    let trust = f.trust();
    let before = f.latest();
    let approval = f
        .services
        .approvals
        .propose(Dangerous::RotateRoot, "ops")
        .unwrap();
    f.services
        .decide(
            &approval.id,
            tresor_wire::approvals::Decision::Approve,
            tresor_server::approvals::Signer {
                custodian: "alice",
                signature: &approval.sign(&f.custodian),
                principal: "spiffe://test/custodian",
            },
        )
        .unwrap();
    // Everything was re-sealed under the new root: the same manifest, the same signing key.
    assert_eq!(f.latest(), before);
    f.pins
        .generate_pin_key(APP, KeyAlgorithm::EcdsaP256)
        .unwrap();
    let v2 = f.latest();
    let state = pins::verify(before.as_bytes(), &trust, APP, None, f.now())
        .unwrap()
        .state;
    assert!(pins::verify(v2.as_bytes(), &trust, APP, Some(&state), f.now()).is_ok());
    assert!(
        f.pins
            .pin_key_csr(APP, &a, "CN=api.example.com", &[])
            .is_ok()
    );

    // Reopen the data directory and unseal: still all there.
    let Fixture {
        _dir: dir,
        store,
        vault,
        clock,
        custodian,
        pins,
        services,
    } = f;
    // Every handle on the vault goes, so the store's lock is released as on a process exit.
    drop((pins, services));
    drop(vault);
    drop(store);
    let store = Arc::new(SledStore::open(dir.path().join("data")).unwrap());
    let vault = Vault::open(
        store.clone(),
        VaultOptions::new("test").with_clock(clock.clone()),
    )
    .unwrap();
    let share = vault
        .sealed_share("alice")
        .unwrap()
        .open(&custodian)
        .unwrap();
    vault.unseal(vec![share]).unwrap();
    let pins = Pins::new(vault.sealed_store());
    assert_eq!(pins.pin_manifest(APP, None).unwrap(), v2);
    assert_eq!(pins.verify_pin_log().unwrap(), 2);
    let terminator = CustodianIdentity::generate("edge").unwrap();
    let delivered = pins.deliver_pin_key(APP, &a, terminator.public()).unwrap();
    assert!(pins::open_delivered_key(&terminator, &delivered).is_ok());
}

#[test]
fn the_log_makes_rewrites_and_equivocation_evident() {
    let f = setup();
    f.with_two_keys();
    f.generate(KeyAlgorithm::EcdsaP256);
    f.pins.reissue_pin_manifest(APP).unwrap();
    let log = f.pins.pin_log().unwrap();
    assert_eq!(log.len(), 3);
    let head = pins::verify_log(&log).unwrap();
    assert_eq!(head, log[2].hash);
    // Any edited field breaks the chain at that entry.
    let mut edited = log.clone();
    edited[1].issued_at += 1;
    assert_eq!(pins::verify_log(&edited), Err(pins::LogError::Broken(2)));
    let mut dropped = log.clone();
    dropped.remove(1);
    assert_eq!(pins::verify_log(&dropped), Err(pins::LogError::Broken(2)));
    // A log rebuilt with a second manifest for version 3 (re-hashed, so the chain itself holds)
    // still shows the equivocation.
    let mut forked = log.clone();
    let mut second = forked[2].clone();
    second.seq = 4;
    second.prev = forked[2].hash.clone();
    second.manifest_hash = format!("sha256:{}", "cd".repeat(32));
    second.hash = second.compute_hash();
    forked.push(second);
    assert!(matches!(
        pins::verify_log(&forked),
        Err(pins::LogError::Equivocation {
            seq: 4,
            version: 3,
            ..
        })
    ));
}

/// The secret of manifest key `generation`, read as someone who stole it would have it.
fn stolen_manifest_key(f: &Fixture, generation: u32) -> tresor_crypto::sign::SigningKey {
    let record: serde_json::Value = f
        .vault
        .sealed_store()
        .records()
        .unwrap()
        .get::<serde_json::Value>(&format!("pins/manifest-key/{generation:06}"))
        .unwrap()
        .unwrap()
        .0;
    let seed = STANDARD.decode(record["secret"].as_str().unwrap()).unwrap();
    tresor_crypto::sign::SigningKey::from_slice(&seed).unwrap()
}

#[test]
fn a_client_refuses_another_apps_manifest_even_when_validly_signed() {
    let f = setup();
    let (_, _) = f.with_two_keys();
    f.pins
        .create_pin_app("android-banking", &spec(&["m.example.com"]))
        .unwrap();
    for _ in 0..2 {
        f.pins
            .generate_pin_key("android-banking", KeyAlgorithm::EcdsaP256)
            .unwrap();
    }
    let other = f.pins.pin_manifest("android-banking", None).unwrap();
    let trust = f.trust();
    assert!(pins::verify(other.as_bytes(), &trust, "android-banking", None, f.now()).is_ok());
    let error = pins::verify(other.as_bytes(), &trust, APP, None, f.now()).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::WrongApp { .. } | VerifyError::BadLink { .. }
        ),
        "{error}"
    );
    // After a key rotation the links are bound to the app: another app's chain is refused
    // even with this app's payload.
    f.pins.rotate_manifest_key().unwrap();
    let other = f.pins.pin_manifest("android-banking", None).unwrap();
    let error = pins::verify(other.as_bytes(), &trust, APP, None, f.now()).unwrap_err();
    assert!(error.to_string().contains("bound to app"), "{error}");
}

#[test]
fn a_retired_manifest_key_cannot_extend_the_chain() {
    let f = setup();
    f.with_two_keys();
    let trust = f.trust();
    f.pins.rotate_manifest_key().unwrap();
    let current = f.latest();
    let accepted = pins::verify(current.as_bytes(), &trust, APP, None, f.now()).unwrap();
    assert_eq!(accepted.state.key_generation, 2);
    // The retired generation-1 key leaks. Its thief mints a generation-2 key of their own and
    // signs a manifest with it, reusing the real payload.
    let retired = stolen_manifest_key(&f, 1);
    let thief = tresor_crypto::sign::SigningKey::generate();
    let (real, _) = payload(&current);
    let forge = |generation: u32, issued_at: u64, expires: u64| {
        let mut envelope = real.clone();
        let mut link = envelope.key_chain[1].clone();
        link.key = STANDARD.encode(thief.verifying_key().as_bytes());
        link.keyid = pins::manifest::key_id(&thief.verifying_key());
        link.generation = Some(generation);
        link.issued_at = Some(issued_at);
        link.expires = Some(expires);
        let binding = pins::manifest::LinkBinding {
            app: APP.into(),
            generation,
            key: link.key.clone(),
            issued_at,
            expires,
        };
        link.link_sig = Some(STANDARD.encode(retired.sign(&binding.signed_bytes())));
        envelope.key_chain = vec![envelope.key_chain[0].clone(), link.clone()];
        let body = STANDARD.decode(&envelope.payload).unwrap();
        envelope.signatures = vec![pins::manifest::EnvelopeSignature {
            keyid: link.keyid.clone(),
            sig: STANDARD
                .encode(thief.sign(&pins::manifest::pae(pins::manifest::PAYLOAD_TYPE, &body))),
        }];
        serde_json::to_vec(&envelope).unwrap()
    };
    let issued = real.key_chain[1].issued_at.unwrap();
    let first_expires = real.key_chain[0].expires.unwrap();
    // A client that has seen generation 2: the thief's generation 2 is a fork.
    let forged = forge(2, issued, issued + 30 * DAY);
    let error = pins::verify(&forged, &trust, APP, Some(&accepted.state), f.now()).unwrap_err();
    assert!(matches!(error, VerifyError::ChainFork(_)), "{error}");
    // Any client: a link issued after its signer expired, a generation skipped, or a key
    // claiming a life longer than the protocol allows is refused.
    for (forged, what) in [
        (
            forge(2, first_expires + 1, first_expires + 30 * DAY),
            "issued after the key that signed it expired",
        ),
        (forge(3, issued, issued + 30 * DAY), "does not follow"),
        (forge(2, issued, issued + 5000 * DAY), "valid for more than"),
    ] {
        let error = pins::verify(&forged, &trust, APP, None, f.now()).unwrap_err();
        assert!(error.to_string().contains(what), "{what}: {error}");
    }
    // A link in the old format only (signed over the key alone) is no longer enough.
    let mut old_format: Envelope = serde_json::from_str(&current).unwrap();
    old_format.key_chain[1].link_sig = None;
    let error = pins::verify(
        &serde_json::to_vec(&old_format).unwrap(),
        &trust,
        APP,
        None,
        f.now(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("format-2"), "{error}");
}

#[test]
fn a_manifest_key_is_replaced_before_it_expires_and_clients_follow() {
    let f = setup();
    f.with_two_keys();
    let trust = f.trust();
    let first = pins::verify(f.latest().as_bytes(), &trust, APP, None, f.now()).unwrap();
    assert_eq!(first.state.key_generation, 1);
    // Ten months on, the next signature comes from a successor the current key linked.
    f.clock.advance(306 * DAY);
    f.pins.reissue_pin_manifest(APP).unwrap();
    let next = pins::verify(
        f.latest().as_bytes(),
        &trust,
        APP,
        Some(&first.state),
        f.now(),
    )
    .unwrap();
    assert_eq!(next.state.key_generation, 2);
}
