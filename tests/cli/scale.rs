//! Issue 18, point 3: the cold start of docs/benchmarks.md ("Scale (issue 18)") proven small.
//! `examples/cold_start.rs` measures `tresor server` holding 100,000 keys in 1,000 tenants; this
//! test holds the behaviour those figures stand on with 1,000 keys in 10 tenants: after a
//! restart and an unseal every key is served again, its ciphertexts from before the restart
//! decrypt, and it encrypts anew.

use tresor_client::CryptoOptions;

use crate::common::deployment::Deployment;

const TENANTS: usize = 10;
const KEYS: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_restarted_server_serves_every_key_of_1000_in_10_tenants() {
    let d = Deployment::new();
    let server = d.start_unsealed(&["alice"], 1);
    let rt = runtime();
    let options = CryptoOptions::default();
    let mut samples = Vec::new();
    {
        let client = d.client(&server, "ops");
        rt.block_on(async {
            for t in 0..TENANTS {
                let tenant = format!("t{t:02}");
                client.create_tenant(&tenant, 2, &[]).await.unwrap();
                for k in 0..KEYS {
                    let key = format!("k{k:03}");
                    client
                        .create_key(&tenant, &key, &Default::default())
                        .await
                        .unwrap();
                    let plaintext = format!("{tenant}/{key}");
                    let sealed = client
                        .encrypt(&tenant, &key, plaintext.as_bytes(), &options)
                        .await
                        .unwrap();
                    samples.push((tenant.clone(), key, plaintext, sealed.ciphertext));
                }
            }
        });
    }
    server.stop().expect("the server stops on SIGTERM");

    let server = d.start();
    let client = d.client(&server, "ops");
    // Sealed after the restart: nothing is served before the custodian's share.
    let (tenant, key, _, ciphertext) = &samples[0];
    let refused = rt.block_on(client.decrypt(tenant, key, ciphertext, &options));
    assert!(refused.is_err(), "a sealed server decrypted");
    server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);

    rt.block_on(async {
        for (tenant, key, plaintext, ciphertext) in &samples {
            let opened = client
                .decrypt(tenant, key, ciphertext, &options)
                .await
                .unwrap_or_else(|e| panic!("{tenant}/{key}: {e}"));
            assert_eq!(opened.as_slice(), plaintext.as_bytes());
            let fresh = client
                .encrypt(tenant, key, b"after the restart", &options)
                .await
                .unwrap();
            assert_eq!(fresh.key_version, 1);
            let opened = client
                .decrypt(tenant, key, &fresh.ciphertext, &options)
                .await
                .unwrap();
            assert_eq!(opened.as_slice(), b"after the restart");
        }
        // Each key still opens only its own ciphertexts, across tenants too.
        let (other_tenant, other_key, _, _) = &samples[KEYS + 1];
        assert!(
            client
                .decrypt(other_tenant, other_key, ciphertext, &options)
                .await
                .is_err()
        );
        assert!(
            client
                .decrypt(tenant, "k001", ciphertext, &options)
                .await
                .is_err()
        );
    });
    assert_eq!(samples.len(), TENANTS * KEYS);
}
