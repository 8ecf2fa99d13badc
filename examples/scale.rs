//! Scale figures of issue 18 (docs/benchmarks.md, "Scale (issue 18)"), each against the real
//! `tresor` binary (`target/release/tresor`, or `TRESOR_BIN`):
//!
//! ```sh
//! cargo build --release --bin tresor
//! cargo run --release --example scale -- cold-start   --dir /tmp/scale-cold --tenants 1000 --keys 100
//! cargo run --release --example scale -- kek-rotation --dir /tmp/scale-kek  --keys 10000 --versions 10
//! ```
//!
//! The example only fills the store and drives the client, so a debug build of it
//! (`cargo build --example scale`, then `TRESOR_BIN=target/release/tresor
//! target/debug/examples/scale …`) measures the same server; it fills the store more slowly.
//!
//! Both start with `tresor dev --dir DIR` once, then stopped: certificates, `tresor.toml`, the
//! dev custodian and an initialised vault, the files a real deployment has. The store is then
//! filled through the `Vault` facade while no server runs (one ciphertext per key is kept in
//! `DIR/samples.txt`); a DIR that already holds them is reused, so a figure can be taken again.
//!
//! **cold-start**: TENANTS level-2 tenants of KEYS keys each. `tresor server --config
//! DIR/tresor.toml` is timed from the moment it is spawned: until it answers `sys/health`, until
//! the custodian's share (submitted over the API, as `tresor operator unseal` does) has unsealed
//! it, and until the first encrypt is answered. The custodian's identity file is opened before
//! the clock starts (its passphrase is the custodian's time, not the server's). Then every key
//! is used once (its old ciphertext decrypted and checked, one encrypt), so every key ring is
//! cached, and the server's VmRSS and VmHWM are read from `/proc/PID/status`.
//!
//! **kek-rotation**: tenant `bench` with KEYS keys of VERSIONS versions each. `tresor dev` serves
//! it; `tresor bench mixed` (encrypt, decrypt, rewrap, datakey, hmac in turn) runs against key
//! `k00000` of that tenant, and after a third of its duration the tenant's KEK is rotated over
//! the API (`tenants/bench/rotate-kek`, as `tresor tenant rotate-kek` does), re-wrapping every
//! version. Printed: the rotation's duration, the bench's requests, errors and latency, then
//! every key's old ciphertext decrypted afresh from storage under the new KEK.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tresor_client::{Client, ClientSettings, CryptoOptions};
use tresor_core::{EncryptRequest, KeySpec, SledStore, TenantSpec, Vault, VaultOptions};
use tresor_crypto::identity::CustodianIdentity;

type Failure = Box<dyn std::error::Error>;

/// `tresor dev`'s custodian passphrase (src/cli/dev.rs): a dev vault holds nothing secret.
const DEV_PASSPHRASE: &[u8] = b"tresor-dev";

#[derive(PartialEq)]
enum Mode {
    ColdStart,
    KekRotation,
}

struct Args {
    mode: Mode,
    dir: PathBuf,
    tenants: usize,
    keys: usize,
    versions: u32,
    port: u16,
    connections: usize,
    /// kek-rotation: how long `tresor bench` runs.
    bench_secs: u64,
}

fn args() -> Result<Args, Failure> {
    let usage = "usage: scale cold-start|kek-rotation [--dir DIR] [--tenants N] [--keys N] [--versions N] [--port N] [--connections N] [--bench-secs N]";
    let mut given = std::env::args().skip(1);
    let mode = match given.next().as_deref() {
        Some("cold-start") => Mode::ColdStart,
        Some("kek-rotation") => Mode::KekRotation,
        _ => return Err(usage.into()),
    };
    let cold = mode == Mode::ColdStart;
    let mut args = Args {
        dir: std::env::temp_dir().join(if cold {
            "tresor-scale-cold"
        } else {
            "tresor-scale-kek"
        }),
        tenants: if cold { 1000 } else { 1 },
        keys: if cold { 100 } else { 10_000 },
        versions: if cold { 1 } else { 10 },
        port: 8341,
        connections: if cold { 8 } else { 4 },
        bench_secs: 30,
        mode,
    };
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {usage}"))?;
        match flag.as_str() {
            "--dir" => args.dir = value.into(),
            "--tenants" => args.tenants = value.parse()?,
            "--keys" => args.keys = value.parse()?,
            "--versions" => args.versions = value.parse()?,
            "--port" => args.port = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            "--bench-secs" => args.bench_secs = value.parse()?,
            _ => return Err(format!("unknown option {flag}; {usage}").into()),
        }
    }
    if args.tenants == 0 || args.keys == 0 || args.versions == 0 || args.connections == 0 {
        return Err("--tenants, --keys, --versions and --connections must be at least 1".into());
    }
    if args.mode == Mode::KekRotation && args.tenants != 1 {
        return Err("kek-rotation uses one tenant (`bench`): drop --tenants".into());
    }
    Ok(args)
}

fn tresor_bin() -> PathBuf {
    std::env::var_os("TRESOR_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/tresor"),
        PathBuf::from,
    )
}

/// Stops a child process the way systemd does (SIGTERM), and waits for it.
fn terminate(child: &mut Child) -> Result<(), Failure> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    Ok(())
}

/// Starts `tresor dev --dir DIR --listen ADDR` and waits for its banner.
fn start_dev(bin: &Path, dir: &Path, listen: &str) -> Result<Child, Failure> {
    let mut dev = Command::new(bin)
        .args(["dev", "--dir"])
        .arg(dir)
        .args(["--listen", listen])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let out = BufReader::new(dev.stdout.take().expect("piped"));
    for line in out.lines() {
        if line?.starts_with("export VAULT_CLIENT_KEY=") {
            return Ok(dev);
        }
    }
    terminate(&mut dev)?;
    Err("tresor dev did not come up".into())
}

fn identity(dir: &Path) -> Result<CustodianIdentity, Failure> {
    let text = fs::read_to_string(dir.join("custodian.key"))?;
    Ok(CustodianIdentity::from_encrypted_json(
        &text,
        DEV_PASSPHRASE,
    )?)
}

/// One ciphertext per key, its plaintext being `tenant/key`.
struct Sample {
    tenant: String,
    key: String,
    ciphertext: String,
}

fn tenant_name(args: &Args, t: usize) -> String {
    match args.mode {
        Mode::ColdStart => format!("t{t:04}"),
        Mode::KekRotation => "bench".to_owned(),
    }
}

fn key_name(args: &Args, k: usize) -> String {
    match args.mode {
        Mode::ColdStart => format!("k{k:03}"),
        Mode::KekRotation => format!("k{k:05}"),
    }
}

/// Tenants, keys (each rotated to VERSIONS versions) and one ciphertext per key, written
/// through the facade, or read back from an earlier run.
fn populate(args: &Args, custodian: &CustodianIdentity) -> Result<Vec<Sample>, Failure> {
    let path = args.dir.join("samples.txt");
    let wanted = args.tenants * args.keys;
    if let Ok(text) = fs::read_to_string(&path) {
        let samples: Vec<Sample> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                Some(Sample {
                    tenant: parts.next()?.to_owned(),
                    key: parts.next()?.to_owned(),
                    ciphertext: parts.next()?.to_owned(),
                })
            })
            .collect();
        if samples.len() != wanted {
            return Err(format!(
                "{} holds {} keys, not {wanted}: use another --dir",
                args.dir.display(),
                samples.len()
            )
            .into());
        }
        println!("reusing {} keys in {}", samples.len(), args.dir.display());
        return Ok(samples);
    }
    let node = tresor_server::node::load_or_create(&args.dir.join("node-identity.key"))?;
    let vault = Vault::open(
        Arc::new(SledStore::open(args.dir.join("data"))?),
        VaultOptions::new("dev").with_node_identity(Arc::new(node)),
    )?;
    vault.unseal(vec![vault.sealed_share(custodian.name())?.open(custodian)?])?;
    let started = Instant::now();
    let mut samples = Vec::with_capacity(wanted);
    let mut file = String::new();
    for t in 0..args.tenants {
        let tenant = tenant_name(args, t);
        vault.create_tenant(&tenant, &TenantSpec::default())?;
        for k in 0..args.keys {
            let key = key_name(args, k);
            vault.create_key(&tenant, &key, KeySpec::default())?;
            let plaintext = format!("{tenant}/{key}");
            // Made under version 1, so after the rotations it needs the oldest version.
            let ciphertext = vault
                .encrypt(
                    &tenant,
                    &key,
                    &EncryptRequest {
                        plaintext: plaintext.as_bytes(),
                        ..Default::default()
                    },
                )?
                .text;
            for _ in 1..args.versions {
                vault.rotate_key(&tenant, &key)?;
            }
            file.push_str(&format!("{tenant} {key} {ciphertext}\n"));
            samples.push(Sample {
                tenant: tenant.clone(),
                key,
                ciphertext,
            });
            if samples.len() % 10_000 == 0 {
                println!(
                    "  {} keys of {} versions, {:.0} s",
                    samples.len(),
                    args.versions,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    println!(
        "populated {} keys of {} version(s) in {} tenant(s) in {:.1} s",
        samples.len(),
        args.versions,
        args.tenants,
        started.elapsed().as_secs_f64()
    );
    vault.seal();
    drop(vault);
    let partial = path.with_extension("partial");
    fs::write(&partial, file)?;
    fs::rename(partial, path)?;
    Ok(samples)
}

/// `tresor.toml` with `listen` on `port`.
fn set_port(dir: &Path, port: u16) -> Result<(), Failure> {
    let path = dir.join("tresor.toml");
    let text = fs::read_to_string(&path)?;
    let changed: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("listen = ") {
                format!("listen = \"127.0.0.1:{port}\"")
            } else {
                line.to_owned()
            }
        })
        .collect();
    fs::write(&path, changed.join("\n") + "\n")?;
    Ok(())
}

/// VmRSS and VmHWM of `pid`, in MB (10^6 bytes).
fn memory(pid: u32) -> Result<(f64, f64), Failure> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64, Failure> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
        let kb: f64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kb * 1024.0 / 1e6)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn settings(args: &Args) -> ClientSettings {
    ClientSettings {
        addr: format!("https://127.0.0.1:{}", args.port),
        ca_cert: args.dir.join("ca.pem"),
        client_cert: args.dir.join("client.pem"),
        client_key: args.dir.join("client-key.pem"),
    }
}

/// Decrypts every sample (checking its plaintext) and, with `encrypt`, encrypts once with its
/// key, over `connections` concurrent callers.
async fn use_every_key(
    client: &Client,
    samples: &[Sample],
    connections: usize,
    encrypt: bool,
) -> Result<(), Failure> {
    let chunk = samples.len().div_ceil(connections);
    let mut tasks = tokio::task::JoinSet::new();
    for part in samples.chunks(chunk) {
        let client = client.clone();
        let part: Vec<(String, String, String)> = part
            .iter()
            .map(|s| (s.tenant.clone(), s.key.clone(), s.ciphertext.clone()))
            .collect();
        tasks.spawn(async move {
            let options = CryptoOptions::default();
            for (tenant, key, ciphertext) in part {
                let plaintext = client
                    .decrypt(&tenant, &key, &ciphertext, &options)
                    .await
                    .map_err(|e| format!("{tenant}/{key}: {e}"))?;
                if plaintext.as_slice() != format!("{tenant}/{key}").as_bytes() {
                    return Err(format!("{tenant}/{key}: wrong plaintext"));
                }
                if encrypt {
                    client
                        .encrypt(&tenant, &key, b"x", &options)
                        .await
                        .map_err(|e| format!("{tenant}/{key}: {e}"))?;
                }
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = args()?;
    let bin = tresor_bin();
    if !bin.exists() {
        return Err(format!(
            "{} is missing: run `cargo build --release --bin tresor` first (or set TRESOR_BIN)",
            bin.display()
        )
        .into());
    }
    fs::create_dir_all(&args.dir)?;
    if !args.dir.join("tresor.toml").exists() {
        let mut dev = start_dev(&bin, &args.dir, "127.0.0.1:0")?;
        terminate(&mut dev)?;
    }
    let custodian = identity(&args.dir)?;
    let samples = populate(&args, &custodian)?;
    match args.mode {
        Mode::ColdStart => cold_start(&args, &bin, &custodian, &samples).await,
        Mode::KekRotation => kek_rotation(&args, &bin, &samples).await,
    }
}

async fn cold_start(
    args: &Args,
    bin: &Path,
    custodian: &CustodianIdentity,
    samples: &[Sample],
) -> Result<(), Failure> {
    set_port(&args.dir, args.port)?;
    let pins: Vec<String> = fs::read_to_string(args.dir.join("custodian.nodes"))?
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let client = Client::new(&settings(args))?.with_timeout(Duration::from_secs(30));
    let log = fs::File::create(args.dir.join("server.log"))?;

    let started = Instant::now();
    let mut server = Command::new(bin)
        .args(["server", "--config"])
        .arg(args.dir.join("tresor.toml"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let pid = server.id();
    let result = measure_cold_start(args, &client, custodian, &pins, samples, started, pid).await;
    terminate(&mut server)?;
    result
}

async fn measure_cold_start(
    args: &Args,
    client: &Client,
    custodian: &CustodianIdentity,
    pins: &[String],
    samples: &[Sample],
    started: Instant,
    pid: u32,
) -> Result<(), Failure> {
    while client.health().await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the server did not answer within 60 s: see DIR/server.log".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let listening = started.elapsed();
    let progress = client.unseal_with(custodian, pins).await?;
    if progress.sealed {
        return Err("still sealed after the custodian's share".into());
    }
    let unsealed = started.elapsed();
    let first = &samples[0];
    client
        .encrypt(
            &first.tenant,
            &first.key,
            b"first",
            &CryptoOptions::default(),
        )
        .await?;
    let first_encrypt = started.elapsed();
    let (rss_first, _) = memory(pid)?;
    println!(
        "cold start: answering after {:.0} ms, unsealed after {:.0} ms, first encrypt answered after {:.0} ms (from spawn); VmRSS then {:.1} MB",
        listening.as_secs_f64() * 1e3,
        unsealed.as_secs_f64() * 1e3,
        first_encrypt.as_secs_f64() * 1e3,
        rss_first
    );

    let pass = Instant::now();
    use_every_key(client, samples, args.connections, true).await?;
    let pass = pass.elapsed();
    let (rss, hwm) = memory(pid)?;
    println!(
        "every key used: {} keys in {} tenants, each an old ciphertext decrypted (checked) and one encrypt, in {:.1} s",
        samples.len(),
        args.tenants,
        pass.as_secs_f64()
    );
    println!(
        "memory with every key ring cached: VmRSS {rss:.1} MB, VmHWM {hwm:.1} MB ({:.2} KB per key above the first encrypt's)",
        (rss - rss_first) * 1e3 / samples.len() as f64
    );
    std::io::stdout().flush()?;
    Ok(())
}

async fn kek_rotation(args: &Args, bin: &Path, samples: &[Sample]) -> Result<(), Failure> {
    let mut dev = start_dev(bin, &args.dir, &format!("127.0.0.1:{}", args.port))?;
    let result = measure_kek_rotation(args, bin, samples).await;
    terminate(&mut dev)?;
    result
}

async fn measure_kek_rotation(args: &Args, bin: &Path, samples: &[Sample]) -> Result<(), Failure> {
    let settings = settings(args);
    let client = Client::new(&settings)?.with_timeout(Duration::from_secs(600));
    let before = client.tenant("bench").await?;
    let bench = Command::new(bin)
        .args(["bench", "mixed", "--tenant", "bench", "--key", "k00000"])
        .args(["-c", &args.connections.to_string()])
        .args(["-d", &format!("{}s", args.bench_secs)])
        .args(["--format", "json"])
        .env("TRESOR_ADDR", &settings.addr)
        .env("TRESOR_CACERT", &settings.ca_cert)
        .env("TRESOR_CLIENT_CERT", &settings.client_cert)
        .env("TRESOR_CLIENT_KEY", &settings.client_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(args.bench_secs / 3)).await;
    let rotating = Instant::now();
    let after = client.rotate_tenant_kek("bench").await?;
    let rotation = rotating.elapsed();
    println!(
        "KEK rotation of tenant bench: KEK version {} -> {}, {} keys x {} versions = {} data-key versions re-wrapped in {:.2} s",
        before.kek_version,
        after.kek_version,
        after.keys,
        args.versions,
        after.keys * args.versions as usize,
        rotation.as_secs_f64()
    );
    let out = bench.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "tresor bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let vault = &report["vault"];
    println!(
        "tresor bench mixed -c {} -d {}s (rotation started after {} s): {} requests ok, {} errors {}, {:.0} requests/s, p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.1} ms",
        args.connections,
        args.bench_secs,
        args.bench_secs / 3,
        vault["requests"],
        vault["errors"],
        vault["errors_by_kind"],
        vault["requests_per_sec"].as_f64().unwrap_or_default(),
        vault["latency"]["p50_us"].as_f64().unwrap_or_default(),
        vault["latency"]["p99_us"].as_f64().unwrap_or_default(),
        vault["latency"]["p999_us"].as_f64().unwrap_or_default(),
        vault["latency"]["max_us"].as_f64().unwrap_or_default() / 1e3,
    );
    // Every key's version-1 ciphertext, its ring read from storage under the new KEK (the
    // rotation left the cached rings alone; only `k00000` was used since the start).
    let check = Instant::now();
    use_every_key(&client, samples, 8, false).await?;
    println!(
        "after: all {} version-1 ciphertexts decrypted and checked in {:.1} s",
        samples.len(),
        check.elapsed().as_secs_f64()
    );
    Ok(())
}
