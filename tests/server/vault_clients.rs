//! A third-party Vault client, unchanged, against a tenant mount: the `vaultrs` crate with a
//! client-certificate identity and `mount = <tenant>`, over real mutual TLS (vaultrs brings its
//! own reqwest + rustls stack and verifies the server with rustls-platform-verifier plus our
//! CA). Built with `rustls-no-provider`, so ring is installed as the process default here and
//! aws-lc stays out of the dependency tree.

use vaultrs::api::transit::KeyType;
use vaultrs::api::transit::requests::{
    CreateKeyRequest, DataKeyType, DecryptDataRequest, EncryptDataRequest, ExportKeyType,
    ExportVersion, GenerateDataKeyRequest, RewrapDataRequest, UpdateKeyConfigurationRequest,
    VerifySignedDataRequest,
};
use vaultrs::api::transit::responses::ReadKeyData;
use vaultrs::client::{Identity, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::transit::{data, generate, key};

use crate::common::server::{ADMIN, ClientFiles, Options, TestServer, b64, principal, unb64};

/// A vaultrs client for the identity in `files`, with `token` (vaultrs sends `X-Vault-Token`
/// only when it is not empty; Tresor ignores it either way).
fn vault_client(server: &TestServer, files: &ClientFiles, token: &str) -> VaultClient {
    // reqwest panics without a process-wide provider under `rustls-no-provider`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = [
        std::fs::read(&files.cert).unwrap(),
        std::fs::read(&files.key).unwrap(),
    ]
    .concat();
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&server.url)
            .ca_certs(vec![server.path("ca.pem").display().to_string()])
            .identity(Some(Identity::from_pem(&pem).unwrap()))
            .token(token)
            .verify(true)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn symmetric_versions(data: &ReadKeyData) -> Vec<String> {
    let ReadKeyData::Symmetric(versions) = data else {
        panic!("expected symmetric key versions, got {data:?}");
    };
    let mut versions: Vec<String> = versions.keys().cloned().collect();
    versions.sort();
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaultrs_works_unchanged_against_a_tenant_mount() {
    let server = TestServer::start(Options::default().tenants(&["payments"])).await;
    let admin_files = server.issue(ADMIN);
    let client = vault_client(&server, &admin_files, "");
    let mount = "payments";

    // sys/health as vaultrs parses it.
    let health = vaultrs::sys::health(&client).await.unwrap();
    assert!(health.initialized && !health.sealed);

    // Create: with defaults (vaultrs sends an empty body) and with options.
    key::create(&client, mount, "card-pan", None).await.unwrap();
    key::create(
        &client,
        mount,
        "per-user",
        Some(
            CreateKeyRequest::builder()
                .derived(true)
                .key_type(KeyType::Aes256Gcm96),
        ),
    )
    .await
    .unwrap();
    key::create(
        &client,
        mount,
        "exportable",
        Some(CreateKeyRequest::builder().exportable(true)),
    )
    .await
    .unwrap();
    // An exportable key waits for custodian approval (202, which vaultrs reads as success).
    server.approve_pending().await;

    // Read and list.
    let read = key::read(&client, mount, "card-pan").await.unwrap();
    assert_eq!(read.name, "card-pan");
    assert!(matches!(read.key_type, KeyType::Aes256Gcm96));
    assert!(read.supports_encryption && read.supports_decryption && !read.derived);
    assert_eq!(read.min_decryption_version, 1);
    assert_eq!(symmetric_versions(&read.keys), ["1"]);
    assert!(key::read(&client, mount, "per-user").await.unwrap().derived);
    let listed = key::list(&client, mount).await.unwrap();
    assert_eq!(listed.keys, ["card-pan", "exportable", "per-user"]);

    // Encrypt and decrypt (vaultrs takes and returns base64).
    let plaintext = b64("4111 1111 1111 1111");
    let sealed = data::encrypt(&client, mount, "card-pan", &plaintext, None)
        .await
        .unwrap();
    assert!(
        sealed.ciphertext.starts_with("tresor:v1:"),
        "{}",
        sealed.ciphertext
    );
    let opened = data::decrypt(&client, mount, "card-pan", &sealed.ciphertext, None)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, plaintext);
    // With associated data, and with a context on the derived key.
    let ad = b64("order-1");
    let bound = data::encrypt(
        &client,
        mount,
        "card-pan",
        &plaintext,
        Some(EncryptDataRequest::builder().associated_data(ad.clone())),
    )
    .await
    .unwrap();
    let opened = data::decrypt(
        &client,
        mount,
        "card-pan",
        &bound.ciphertext,
        Some(DecryptDataRequest::builder().associated_data(ad)),
    )
    .await
    .unwrap();
    assert_eq!(opened.plaintext, plaintext);
    let context = b64("user-7");
    let derived = data::encrypt(
        &client,
        mount,
        "per-user",
        &plaintext,
        Some(EncryptDataRequest::builder().context(context.clone())),
    )
    .await
    .unwrap();
    let opened = data::decrypt(
        &client,
        mount,
        "per-user",
        &derived.ciphertext,
        Some(DecryptDataRequest::builder().context(context.clone())),
    )
    .await
    .unwrap();
    assert_eq!(opened.plaintext, plaintext);

    // Rotate, then rewrap the old ciphertext to the new version; both decrypt.
    key::rotate(&client, mount, "card-pan").await.unwrap();
    let read = key::read(&client, mount, "card-pan").await.unwrap();
    assert_eq!(symmetric_versions(&read.keys), ["1", "2"]);
    let rewrapped = data::rewrap(&client, mount, "card-pan", &sealed.ciphertext, None)
        .await
        .unwrap();
    assert!(
        rewrapped.ciphertext.starts_with("tresor:v2:"),
        "{}",
        rewrapped.ciphertext
    );
    let opened = data::decrypt(&client, mount, "card-pan", &rewrapped.ciphertext, None)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, plaintext);
    let rewrapped = data::rewrap(
        &client,
        mount,
        "per-user",
        &derived.ciphertext,
        Some(RewrapDataRequest::builder().context(context)),
    )
    .await
    .unwrap();
    assert!(rewrapped.ciphertext.starts_with("tresor:v1:"));

    // Data keys: plaintext form (the wrapped key decrypts to it) and wrapped form.
    let datakey = generate::data_key(&client, mount, "card-pan", DataKeyType::Plaintext, None)
        .await
        .unwrap();
    let key_b64 = datakey.plaintext.expect("a plaintext data key");
    assert_eq!(unb64(&key_b64).len(), 32);
    let opened = data::decrypt(&client, mount, "card-pan", &datakey.ciphertext, None)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, key_b64);
    let wrapped = generate::data_key(
        &client,
        mount,
        "card-pan",
        DataKeyType::Wrapped,
        Some(GenerateDataKeyRequest::builder().bits(512u16)),
    )
    .await
    .unwrap();
    assert!(wrapped.plaintext.is_none());
    let opened = data::decrypt(&client, mount, "card-pan", &wrapped.ciphertext, None)
        .await
        .unwrap();
    assert_eq!(unb64(&opened.plaintext).len(), 64);

    // HMAC and its verification.
    let token = generate::hmac(&client, mount, "card-pan", &b64("alice"), None)
        .await
        .unwrap();
    assert!(token.hmac.starts_with("tresor:v2:"), "{}", token.hmac);
    let verified = data::verify(
        &client,
        mount,
        "card-pan",
        &b64("alice"),
        Some(VerifySignedDataRequest::builder().hmac(token.hmac.clone())),
    )
    .await
    .unwrap();
    assert!(verified.valid);
    let verified = data::verify(
        &client,
        mount,
        "card-pan",
        &b64("bob"),
        Some(VerifySignedDataRequest::builder().hmac(token.hmac)),
    )
    .await
    .unwrap();
    assert!(!verified.valid);

    // Config, trim, export, delete.
    key::update(
        &client,
        mount,
        "card-pan",
        Some(
            UpdateKeyConfigurationRequest::builder()
                .min_decryption_version(2u64)
                .min_encryption_version(2u64)
                .deletion_allowed(true),
        ),
    )
    .await
    .unwrap();
    // Trim destroys version 1, so it waits for a custodian like a delete (202 below).
    key::trim(&client, mount, "card-pan", 2).await.unwrap();
    server.approve_pending().await;
    let read = key::read(&client, mount, "card-pan").await.unwrap();
    assert_eq!(symmetric_versions(&read.keys), ["2"]);
    let exported = key::export(
        &client,
        mount,
        "exportable",
        ExportKeyType::EncryptionKey,
        ExportVersion::Latest,
    )
    .await
    .unwrap();
    assert_eq!(exported.name, "exportable");
    assert_eq!(unb64(&exported.keys["1"]).len(), 32);
    // A delete is a pending approval (202, which vaultrs reads as success); it runs once the
    // vault's custodian signs it.
    key::delete(&client, mount, "card-pan").await.unwrap();
    assert!(
        key::read(&client, mount, "card-pan").await.is_ok(),
        "not deleted before approval"
    );
    server.approve_pending().await;
    // Approved, its deletion window runs (docs/custody.md, "Scheduled deletion"): vaultrs still
    // reads the key, and using it is a 400 naming the date.
    assert!(key::read(&client, mount, "card-pan").await.is_ok());
    match data::encrypt(&client, mount, "card-pan", &b64("x"), None).await {
        Err(ClientError::APIError { code: 400, errors }) => {
            assert!(
                errors[0].contains("scheduled for destruction at"),
                "{errors:?}"
            )
        }
        other => panic!("expected a 400 naming the date, got {other:?}"),
    }

    // Vault's error shapes as vaultrs reads them.
    match key::read(&client, mount, "never-made").await {
        Err(ClientError::APIError { code: 404, errors }) => assert!(errors.is_empty()),
        other => panic!("expected a bare 404, got {other:?}"),
    }
    match data::decrypt(&client, mount, "exportable", "tresor:v9:AAAA", None).await {
        Err(ClientError::APIError { code: 400, errors }) => assert_eq!(errors.len(), 1),
        other => panic!("expected a 400 with a message, got {other:?}"),
    }

    // A token is ignored (the certificate is the credential); a principal without a grant is
    // refused with Vault's 403.
    let with_token = vault_client(&server, &admin_files, "s.not-a-real-token");
    let sealed = data::encrypt(&with_token, mount, "exportable", &plaintext, None)
        .await
        .unwrap();
    assert!(sealed.ciphertext.starts_with("tresor:v1:"));
    let stranger = vault_client(&server, &server.issue(&principal("svc/stranger")), "");
    match data::encrypt(&stranger, mount, "exportable", &plaintext, None).await {
        Err(ClientError::APIError { code: 403, errors }) => {
            assert!(errors[0].contains("permission denied"), "{errors:?}")
        }
        other => panic!("expected 403, got {other:?}"),
    }
}
