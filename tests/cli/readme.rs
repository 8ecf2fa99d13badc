//! README's "Try it" works as written: `tresor dev` starts, the exported variables are set,
//! and the fenced command block runs with `sh -e` against the built binary; then `tresor dev`
//! with the same directory comes back unsealed with the same data.

use crate::common::process::Bounded;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::dev::{DevProcess, TRESOR};

/// `tresor dev` in `dir`, having exported every variable README promises.
fn start_dev(dir: &Path) -> DevProcess {
    let dev = DevProcess::start(dir);
    for wanted in [
        "TRESOR_ADDR",
        "TRESOR_CACERT",
        "TRESOR_CLIENT_CERT",
        "TRESOR_CLIENT_KEY",
        "VAULT_ADDR",
        "VAULT_CACERT",
        "VAULT_CLIENT_CERT",
        "VAULT_CLIENT_KEY",
    ] {
        assert!(
            dev.env.iter().any(|(name, _)| name == wanted),
            "{wanted} not exported: {:?}",
            dev.stdout
        );
    }
    dev
}

/// Runs `script` with `sh -e`, the exported variables and `tresor` on the PATH; returns
/// stdout, or panics with everything on failure.
fn sh(dev: &DevProcess, script: &str) -> String {
    let bin_dir = Path::new(TRESOR).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .args(["-e", "-c", script])
        .env("PATH", path)
        .envs(dev.env.iter().map(|(n, v)| (n, v)))
        .stdin(Stdio::null())
        .bounded_output();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "script failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}\nserver stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        dev.stderr()
    );
    stdout
}

/// The fenced `sh` blocks of README's "## Try it" section.
fn try_it_blocks() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Try it\n")
        .nth(1)
        .expect("README has a `## Try it` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}

#[test]
fn readme_try_it_runs_as_written_and_dev_restarts_with_its_data() {
    let blocks = try_it_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "expected the `tresor dev` block and the commands: {blocks:?}"
    );
    assert!(blocks[0].trim().starts_with("tresor dev"), "{}", blocks[0]);
    let commands = &blocks[1];
    for expected in [
        "tresor key create dev/card-pan",
        "tresor encrypt dev/card-pan 'hello'",
    ] {
        assert!(commands.contains(expected), "README lost `{expected}`");
    }

    let dir = tempfile::tempdir().unwrap();
    let dev = start_dev(dir.path());
    let out = sh(&dev, commands);
    let lines: Vec<&str> = out.lines().collect();
    let ciphertext = lines
        .iter()
        .find(|l| l.starts_with("tresor:v1:"))
        .unwrap_or_else(|| panic!("no v1 ciphertext echoed:\n{out}"))
        .to_string();
    assert!(
        lines.iter().any(|l| l.starts_with("tresor:v2:")),
        "no rewrap to v2:\n{out}"
    );
    assert!(out.contains("sealed: false"), "status:\n{out}");
    // `tresor bench`: every request answered, and the ceiling measured beside the vault.
    assert!(
        out.contains("2000 ok, 0 errors") && out.contains("vault/ceiling:"),
        "bench:\n{out}"
    );
    // The last command decrypts the v1 ciphertext after the rotation.
    assert!(
        out.trim_end().ends_with("hello"),
        "decrypt did not print the plaintext last:\n{out}"
    );

    // Same directory again: the same vault, unsealed, with the key and its two versions.
    dev.stop();
    let dev = start_dev(dir.path());
    let out = sh(
        &dev,
        &format!(
            "tresor decrypt dev/card-pan '{ciphertext}'; echo; tresor key show dev/card-pan --format json"
        ),
    );
    assert!(out.starts_with("hello\n"), "{out}");
    let key: serde_json::Value = serde_json::from_str(out.split_once('\n').unwrap().1).unwrap();
    assert_eq!(key["latest_version"], 2, "{key}");
    dev.stop();
}
