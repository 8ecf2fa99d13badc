//! Debian's curl (7.88 in Debian 12) against the server over real mutual TLS (issue 15).

use crate::common::clients::Curl;
use crate::common::server::{ADMIN, Options, TestServer, error_message, principal};

/// Issue 15, point 7: over HTTP/2, an answer given before the request's body was read (a
/// denial, a missing route, a wrong method, a rate limit) used to be followed by RST_STREAM
/// while curl was still sending the body; curl then dropped the answer (exit 92, status 000).
/// The body is now read before the answer goes out, so curl shows it, over HTTP/2 as over
/// HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_before_the_body_reach_curl_over_http2() {
    let limited = principal("svc/limited");
    let server = TestServer::start(Options::default().policy(
        "limited.toml",
        &format!(
            "[[grant]]\nprincipals = [\"{limited}\"]\ntenant = \"dev\"\nkeys = [\"*\"]\n\
             operations = [\"encrypt\"]\nrate_limit = {{ requests_per_second = 0.001, burst = 1 }}\n"
        ),
    ))
    .await;
    server
        .vault()
        .create_key("dev", "k", tresor_core::KeySpec::default())
        .unwrap();
    let Some(nobody) = Curl::new(&server, &server.issue(&principal("svc/nobody"))) else {
        return;
    };
    let limited = Curl::new(&server, &server.issue(&limited)).unwrap();
    let admin = Curl::new(&server, &server.issue(ADMIN)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Larger than what the connection's windows take in before the server answers.
    let body = dir.path().join("body.json");
    let plaintext = crate::common::server::b64(vec![b'p'; 200_000]);
    std::fs::write(&body, format!("{{\"plaintext\":\"{plaintext}\"}}")).unwrap();
    let data = format!("@{}", body.display());
    let out = dir.path().join("answer.json");
    let url = |path: &str| format!("{}/v1/{path}", server.url);
    let cases: [(&Curl, &[&str], String, u16, &str); 6] = [
        (&nobody, &[], url("dev/encrypt/k"), 403, "permission denied"),
        (&nobody, &[], url("sys/nothing"), 404, ""),
        (&nobody, &["--request", "PUT"], url("sys/health"), 405, ""),
        // A route that takes no body, sent one anyway, answering 404 from its handler.
        (&admin, &["--request", "GET"], url("dev/keys/nope"), 404, ""),
        (&limited, &[], url("dev/encrypt/k"), 200, ""),
        (&limited, &[], url("dev/encrypt/k"), 429, "rate limit"),
    ];
    for version in ["--http2", "--http1.1"] {
        for (curl, extra, url, status, message) in &cases {
            if std::ptr::eq(*curl, &limited) && *status == 200 && version == "--http1.1" {
                continue; // The one request the burst allows was spent over HTTP/2.
            }
            let mut args = vec![version, "--data-binary", &data];
            args.extend_from_slice(extra);
            let (code, reported, stderr) = curl.run(&args, url, &out);
            let expected_version = if version == "--http2" { "2" } else { "1.1" };
            assert_eq!(
                (code, reported.as_str()),
                (Some(0), format!("{status} {expected_version}").as_str()),
                "{version} {url}: {stderr}"
            );
            let answer: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap_or_default();
            assert!(
                error_message(&answer).contains(message),
                "{version} {url}: {answer}"
            );
        }
    }
}
