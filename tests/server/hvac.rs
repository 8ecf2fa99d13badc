//! Python's hvac (PyPI `hvac`, on python-requests), unchanged, against the server over real
//! mutual TLS (issue 15).

use crate::common::clients::Hvac;
use crate::common::server::{ADMIN, Options, TestServer};

/// Issue 15, point 5: python-requests sends a body without `Expect: 100-continue`; a body over
/// `limits.max_body_bytes` must still reach it as the 413, not as a broken connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_is_answered_413() {
    let server = TestServer::start(
        Options::default()
            .tenants(&["payments"])
            .limit("max_body_bytes = 65536"),
    )
    .await;
    let Some(hvac) = Hvac::new(&server, &server.issue(ADMIN)) else {
        return;
    };
    let (out, err) = hvac.run(
        r#"
client.secrets.transit.create_key(name='k', mount_point='payments')
for size in (100_000, 1_000_000, 3_000_000):
    big = base64.b64encode(os.urandom(size)).decode()
    try:
        client.secrets.transit.encrypt_data(name='k', plaintext=big, mount_point='payments')
        print('answered', size)
    except hvac.exceptions.VaultError as e:
        print('refused', size, type(e).__name__, e)
    except Exception as e:
        print('broken', size, type(e).__name__, e)
# The client goes on working.
sealed = client.secrets.transit.encrypt_data(name='k', plaintext='aGk=', mount_point='payments')
print('then', sealed['data']['ciphertext'][:10])
"#,
    );
    for size in [100_000, 1_000_000, 3_000_000] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&size.to_string()))
            .unwrap_or_else(|| panic!("no line for {size}: {out}{err}"));
        assert!(
            line.starts_with("refused")
                && line.contains("request body is larger than the limit of 65536 bytes"),
            "{size}: {line}\n{out}{err}"
        );
    }
    assert!(out.contains("then tresor:v1:"), "{out}{err}");
}
