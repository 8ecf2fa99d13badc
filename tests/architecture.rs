//! Architecture checks (docs/architecture.md, "Architecture checks"): what may depend on what,
//! read from the manifests and the sources themselves, so that breaking a rule fails `cargo test`.
//!
//! 1. Only tresor-crypto names a primitive crate, in its manifest or in its code.
//! 2. No crate's module graph has a cycle.
//! 3. The dependency rules below ([`CRATE_RULES`], [`FEATURE_RULES`], [`MODULE_RULES`]) hold.
//!
//! Std only, so that this binary builds in seconds: a Rust lexer that drops comments and literals,
//! a `use`-tree parser, and a reader for the part of TOML that Cargo manifests and Cargo.lock use.
//! Every checker works on in-memory text; the tests in `checks_can_fail` at the end feed each one
//! a small synthetic violation and assert that it is reported, so no check passes by being blind.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// The rules, as data.

/// The one crate that may depend on and name the primitive crates.
const CRYPTO_PROVIDER: &str = "tresor-crypto";

/// Crates that implement cryptographic primitives. A new one is one line here.
///
/// rustls, tokio-rustls, hyper-rustls and rcgen are TLS plumbing, not primitives: the TLS code
/// may use them (rustls's ring provider, `rustls::crypto::ring`, included).
const PRIMITIVES: &[&str] = &[
    "aes-gcm-siv",
    "aes",
    "hkdf",
    "hmac",
    "sha2",
    "x25519-dalek",
    "ed25519-dalek",
    "argon2",
    "rand",
    "getrandom",
    "ring",
    "rsa",
    "subtle",
    // Not dependencies yet: listed so that they are covered the day they arrive.
    "fpe",
    "aes-kw",
];

/// The one exemption from the primitive check: the root package's integration tests (tests/,
/// with the root package's dev-dependencies) recompute ciphertexts, shares, identity files and
/// audit chains with the primitives themselves, on purpose: a format test that went through
/// tresor-crypto could not catch tresor-crypto getting the format wrong. The root package's src/
/// and benches/ are checked like any other code, so those dev-dependencies cannot leak there.
const EXEMPT_TESTS_OF: &str = "tresor";

/// A crate may not depend on `forbidden`, directly or through other crates (normal and build
/// dependencies; dev-dependencies do not reach a crate's users). Upward dependencies between
/// workspace crates need no rule: each depends on tresor-crypto, so Cargo refuses the cycle.
struct CrateRule {
    krate: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const CRATE_RULES: &[CrateRule] = &[
    CrateRule {
        krate: "tresor-crypto",
        forbidden: &["tokio", "hyper", "rustls", "sled"],
        why: "the crypto provider computes: no runtime, no network, no storage",
    },
    CrateRule {
        krate: "tresor-wire",
        forbidden: &[
            "tresor-client",
            "tresor-core",
            "tresor-server",
            "tokio",
            "hyper",
            "rustls",
            "sled",
        ],
        why: "what crosses the wire is data: it does no I/O and sits below client and server",
    },
    CrateRule {
        krate: "tresor-client",
        forbidden: &["tresor-core", "tresor-server", "sled", "rcgen"],
        why: "the client needs neither storage nor the vault core",
    },
    CrateRule {
        krate: "tresor-core",
        forbidden: &[
            "tresor-server",
            "tresor-client",
            "hyper",
            "hyper-util",
            "http-body-util",
            "rustls",
            "rcgen",
            "tresor-postgres",
            "tokio-postgres",
        ],
        why: "the vault core knows no HTTP and no database driver (backends other than sled \
              implement its Store trait from their own crate)",
    },
    CrateRule {
        krate: "tresor-postgres",
        forbidden: &[
            "tresor-server",
            "tresor-client",
            "hyper",
            "hyper-util",
            "http-body-util",
            "rcgen",
        ],
        why: "the PostgreSQL backend is storage below the server: it knows no HTTP",
    },
];

/// A crate may not turn on these features of a dependency (its own and those of the workspace
/// entry it inherits).
struct FeatureRule {
    krate: &'static str,
    dependency: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const FEATURE_RULES: &[FeatureRule] = &[
    FeatureRule {
        krate: "tresor-client",
        dependency: "hyper",
        forbidden: &["server"],
        why: "the client builds without hyper's server side",
    },
    FeatureRule {
        krate: "tresor-client",
        dependency: "hyper-util",
        forbidden: &["server", "server-auto", "server-graceful"],
        why: "the client builds without hyper's server side",
    },
];

/// Within `krate`, module `from` ("" for the whole crate) may not reach any of `forbidden`:
/// a module of the same crate (`crate::pins`) or a path into another crate (`tresor_core::Vault`,
/// `std::fs`). Reaching counts through other modules of the crate too: `approvals` may not name
/// `services` if `services` names `pins`.
struct ModuleRule {
    krate: &'static str,
    from: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const MODULE_RULES: &[ModuleRule] = &[
    ModuleRule {
        krate: "tresor-core",
        from: "",
        forbidden: &["tresor_wire::approvals", "tresor_wire::pins"],
        why: "the vault core knows no approval workflow and no pins",
    },
    ModuleRule {
        krate: "tresor-core",
        from: "keys",
        forbidden: &[
            "crate::vault",
            "tresor_crypto::identity",
            "tresor_wire::custody",
        ],
        why: "keys know no custodians and sit below the facade",
    },
    ModuleRule {
        krate: "tresor-core",
        from: "store",
        forbidden: &["crate::vault", "crate::barrier"],
        why: "storage sits below the barrier and the facade",
    },
    ModuleRule {
        krate: "tresor-core",
        from: "barrier",
        forbidden: &["crate::vault"],
        why: "the barrier sits below the facade",
    },
    ModuleRule {
        krate: "tresor-server",
        from: "approvals",
        forbidden: &["crate::pins", "tresor_wire::pins", "tresor_core::Vault"],
        why: "approvals know no pins and hold a narrow handle, not the vault: an approved \
              operation runs through services::Runner",
    },
    ModuleRule {
        krate: "tresor-server",
        from: "pins",
        forbidden: &[
            "crate::approvals",
            "tresor_wire::approvals",
            "tresor_core::Vault",
        ],
        why: "pins know no approvals and hold a narrow handle, not the vault",
    },
    ModuleRule {
        krate: "tresor-server",
        from: "audit",
        forbidden: &["tresor_core::Vault"],
        why: "the audit log knows no vault",
    },
    ModuleRule {
        krate: "tresor-wire",
        from: "approvals",
        forbidden: &["crate::pins"],
        why: "approvals know no pins",
    },
    ModuleRule {
        krate: "tresor-wire",
        from: "pins",
        forbidden: &["crate::approvals"],
        why: "pins know no approvals",
    },
    ModuleRule {
        krate: "tresor-wire",
        from: "",
        forbidden: &["std::fs", "std::net", "std::process", "tokio"],
        why: "what crosses the wire is data: it does no I/O",
    },
];

// ---------------------------------------------------------------------------------------------
// The tests over the real tree.

#[test]
fn only_the_crypto_provider_names_primitive_crates() {
    assert_clean(
        "primitive crate outside tresor-crypto",
        check_primitives(workspace()),
    );
}

#[test]
fn no_module_graph_has_a_cycle() {
    assert_clean("module cycle", check_cycles(workspace()));
}

#[test]
fn crates_keep_the_dependency_rules() {
    let ws = workspace();
    let mut violations = check_crate_rules(ws);
    violations.extend(check_feature_rules(ws));
    assert_clean("crate dependency rule broken", violations);
}

#[test]
fn modules_keep_the_dependency_rules() {
    assert_clean(
        "module dependency rule broken",
        check_module_rules(workspace()),
    );
}

/// A rule that names a crate or module that does not exist would hold vacuously.
#[test]
fn the_rules_name_what_exists() {
    let ws = workspace();
    let lock = lock_packages(&ws.lock);
    let known = |name: &str| ws.krate(name).is_some() || lock.contains_key(name);
    let mut problems = Vec::new();
    for rule in CRATE_RULES {
        if ws.krate(rule.krate).is_none() {
            problems.push(format!("CRATE_RULES: no workspace crate `{}`", rule.krate));
        }
        for f in rule.forbidden.iter().filter(|f| !known(f)) {
            problems.push(format!(
                "CRATE_RULES: `{f}` is neither a workspace crate nor in Cargo.lock"
            ));
        }
    }
    for rule in FEATURE_RULES {
        let has_dep = ws.krate(rule.krate).is_some_and(|k| {
            manifest_deps(&k.manifest)
                .iter()
                .any(|d| d.package == rule.dependency)
        });
        if !has_dep {
            problems.push(format!(
                "FEATURE_RULES: {} has no dependency `{}`",
                rule.krate, rule.dependency
            ));
        }
    }
    for rule in MODULE_RULES {
        let Some(krate) = ws.krate(rule.krate) else {
            problems.push(format!("MODULE_RULES: no workspace crate `{}`", rule.krate));
            continue;
        };
        let graph = CrateGraph::build(krate);
        let exists = |module: &str| {
            let segs = segments(module);
            graph.files.iter().any(|f| f.module.starts_with(&segs))
        };
        if !exists(rule.from) {
            problems.push(format!(
                "MODULE_RULES: {} has no module `{}`",
                rule.krate, rule.from
            ));
        }
        for f in rule.forbidden {
            match f.strip_prefix("crate::") {
                Some(module) if !exists(module) => {
                    problems.push(format!(
                        "MODULE_RULES: {} has no module `{module}`",
                        rule.krate
                    ));
                }
                Some(_) => {}
                None => {
                    let first = f.split("::").next().unwrap_or_default();
                    if !["std", "core", "alloc"].contains(&first)
                        && !known(&first.replace('_', "-"))
                    {
                        problems.push(format!("MODULE_RULES: `{f}` names no known crate"));
                    }
                }
            }
        }
    }
    assert_clean("rule naming nothing", problems);
}

fn assert_clean(what: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{} {what}(s) (rules in tests/architecture.rs, docs/architecture.md):\n  - {}\n",
        violations.len(),
        violations.join("\n  - ")
    );
}

fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| Workspace::load(Path::new(env!("CARGO_MANIFEST_DIR"))))
}

// ---------------------------------------------------------------------------------------------
// The workspace, as text.

struct Workspace {
    crates: Vec<Crate>,
    /// Cargo.lock.
    lock: String,
}

struct Crate {
    name: String,
    /// Relative to the workspace root; "" for the root package.
    dir: String,
    manifest: String,
    files: Vec<SourceFile>,
}

struct SourceFile {
    /// Relative to the crate's directory: `src/api/mod.rs`, `benches/vault.rs`.
    rel: String,
    text: String,
}

impl Workspace {
    fn load(root: &Path) -> Workspace {
        let read = |p: &Path| {
            std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let root_manifest = read(&root.join("Cargo.toml"));
        let mut dirs = vec![String::new()];
        for entry in toml_entries(&root_manifest) {
            if entry.table == ["workspace"] && entry.key == ["members"] {
                for member in toml_strings(&entry.value) {
                    match member.strip_suffix("/*") {
                        Some(parent) => {
                            let mut found: Vec<String> = std::fs::read_dir(root.join(parent))
                                .unwrap_or_else(|e| panic!("{parent}: {e}"))
                                .map(|e| e.unwrap().path())
                                .filter(|p| p.join("Cargo.toml").is_file())
                                .map(|p| {
                                    format!("{parent}/{}", p.file_name().unwrap().to_string_lossy())
                                })
                                .collect();
                            found.sort();
                            dirs.extend(found);
                        }
                        None => dirs.push(member),
                    }
                }
            }
        }
        let crates = dirs
            .into_iter()
            .map(|dir| {
                let base = root.join(&dir);
                let manifest = read(&base.join("Cargo.toml"));
                let mut paths = Vec::new();
                for sub in ["build.rs", "src", "benches", "examples", "tests"] {
                    rust_files(&base.join(sub), &mut paths);
                }
                let files = paths
                    .iter()
                    .map(|path| SourceFile {
                        rel: path
                            .strip_prefix(&base)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                        text: read(path),
                    })
                    .collect();
                Crate {
                    name: package_name(&manifest),
                    dir,
                    manifest,
                    files,
                }
            })
            .collect();
        Workspace {
            crates,
            lock: read(&root.join("Cargo.lock")),
        }
    }

    fn krate(&self, name: &str) -> Option<&Crate> {
        self.crates.iter().find(|c| c.name == name)
    }

    fn root_package(&self) -> &Crate {
        self.crates
            .iter()
            .find(|c| c.dir.is_empty())
            .expect("a root package")
    }
}

impl Crate {
    fn display(&self, rel: &str) -> String {
        if self.dir.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.dir)
        }
    }

    fn manifest_path(&self) -> String {
        self.display("Cargo.toml")
    }
}

/// The `.rs` files at or below `path`, sorted.
fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for entry in entries {
        rust_files(&entry, out);
    }
}

/// The module a file of the library target is: `src/lib.rs` is the root, `src/api/mod.rs` and
/// `src/api.rs` are `api`, `src/api/keys.rs` is `api::keys`. Binaries, benches, examples and
/// tests are crates of their own and take no part in the library's module graph.
fn module_of(rel: &str) -> Option<Vec<String>> {
    let path = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    if path == "main" || path.starts_with("bin/") {
        return None;
    }
    let mut segs: Vec<String> = path.split('/').map(str::to_owned).collect();
    if segs.last().is_some_and(|s| s == "lib" || s == "mod") {
        segs.pop();
    }
    Some(segs)
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ident_of(krate: &str) -> String {
    krate.replace('-', "_")
}

// ---------------------------------------------------------------------------------------------
// Check 1: primitives only in tresor-crypto.

fn check_primitives(ws: &Workspace) -> Vec<String> {
    let mut violations = Vec::new();
    for krate in ws.crates.iter().filter(|k| k.name != CRYPTO_PROVIDER) {
        let exempt_tests = krate.name == EXEMPT_TESTS_OF;
        let deps = manifest_deps(&krate.manifest);
        // The names code uses for primitives: their own, and any a dependency was renamed to.
        let primitive_of: BTreeMap<String, &str> = PRIMITIVES
            .iter()
            .map(|p| (ident_of(p), *p))
            .chain(deps.iter().filter_map(|d| {
                let primitive = PRIMITIVES.iter().find(|p| **p == d.package)?;
                Some((ident_of(&d.name), *primitive))
            }))
            .collect();
        for dep in deps {
            let exempt =
                dep.kind == DepKind::Workspace || (exempt_tests && dep.kind == DepKind::Dev);
            if exempt || !PRIMITIVES.contains(&dep.package.as_str()) {
                continue;
            }
            violations.push(format!(
                "{}:{}: {} depends on the primitive crate `{}` ({}); only {CRYPTO_PROVIDER} may: \
                 add what you need there and use it through {}",
                krate.manifest_path(),
                dep.line,
                krate.name,
                dep.package,
                dep.kind.table(),
                ident_of(CRYPTO_PROVIDER),
            ));
        }
        for file in &krate.files {
            if exempt_tests && file.rel.starts_with("tests/") {
                continue;
            }
            let facts = FileFacts::of(file);
            let mut seen = BTreeSet::new();
            for r in &facts.refs {
                let Resolved::External(segs) = &r.path else {
                    continue;
                };
                let Some(primitive) = primitive_of.get(&segs[0]) else {
                    continue;
                };
                if seen.insert((r.line, *primitive)) {
                    violations.push(format!(
                        "{}:{}: `{}` names the primitive crate `{primitive}`; only {CRYPTO_PROVIDER} \
                         may: add what you need there and use it through {}",
                        krate.display(&file.rel),
                        r.line,
                        r.text,
                        ident_of(CRYPTO_PROVIDER),
                    ));
                }
            }
        }
    }
    violations
}

// ---------------------------------------------------------------------------------------------
// Check 2: no module cycles.

/// Cycles are looked for at every level of the module tree: between the top-level modules of a
/// crate (each with everything below it), and between the children of each directory module
/// (`api::encrypt`, `api::keys`, … with what is below each). A directory's own file (`mod.rs`,
/// `lib.rs`) is not a node at its level: a parent declares its children and they use what it holds
/// in common (`super::`), which is how Rust modules are built, not a tangle. An item a parent
/// merely re-exports counts as the child's that defines it.
fn check_cycles(ws: &Workspace) -> Vec<String> {
    let mut violations = Vec::new();
    for krate in &ws.crates {
        let graph = CrateGraph::build(krate);
        let mut levels: BTreeSet<Vec<String>> = BTreeSet::new();
        for file in &graph.files {
            for depth in 0..file.module.len() {
                levels.insert(file.module[..depth].to_vec());
            }
        }
        for level in levels {
            // node -> node -> first evidence
            let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (from, file) in graph.files.iter().enumerate() {
                let Some(a) = child_at(&file.module, &level) else {
                    continue;
                };
                edges.entry(a.clone()).or_default();
                for edge in &graph.edges[from] {
                    let Some(b) = child_at(&graph.files[edge.to].module, &level) else {
                        continue;
                    };
                    if a != b {
                        edges
                            .entry(a.clone())
                            .or_default()
                            .entry(b)
                            .or_insert_with(|| {
                                format!(
                                    "{}:{} `{}`",
                                    krate.display(&file.rel),
                                    edge.line,
                                    edge.text
                                )
                            });
                    }
                }
            }
            for cycle in find_cycles(&edges) {
                let prefix = if level.is_empty() {
                    String::new()
                } else {
                    format!("{}::", level.join("::"))
                };
                let names: Vec<String> = cycle.iter().map(|n| format!("{prefix}{n}")).collect();
                let evidence: Vec<String> = cycle
                    .iter()
                    .zip(cycle.iter().cycle().skip(1))
                    .map(|(a, b)| format!("{prefix}{a} → {prefix}{b}: {}", edges[a][b]))
                    .collect();
                violations.push(format!(
                    "{}: module cycle {} → {} ({})",
                    krate.name,
                    names.join(" → "),
                    names[0],
                    evidence.join("; ")
                ));
            }
        }
    }
    violations
}

/// The child of `level` that `module` is in or below, if it is below `level` at all.
fn child_at(module: &[String], level: &[String]) -> Option<String> {
    (module.len() > level.len() && module.starts_with(level)).then(|| module[level.len()].clone())
}

/// One cycle per strongly connected component of more than one node (Tarjan), shortest from
/// the component's first node.
fn find_cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            let edges = self.edges;
            for w in edges.get(v).into_iter().flat_map(|m| m.keys()) {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }
    let mut tarjan = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in edges.keys() {
        if !tarjan.index.contains_key(v.as_str()) {
            tarjan.visit(v);
        }
    }
    let mut cycles = Vec::new();
    for component in tarjan.components.into_iter().filter(|c| c.len() > 1) {
        let members: BTreeSet<&str> = component.into_iter().collect();
        let start = *members.first().unwrap();
        // Shortest way from `start` back to itself inside the component.
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        'search: while let Some(v) = queue.pop_front() {
            for w in edges[v]
                .keys()
                .map(String::as_str)
                .filter(|w| members.contains(w))
            {
                if w == start {
                    let mut cycle = vec![v.to_owned()];
                    let mut at = v;
                    while at != start {
                        at = parent[at];
                        cycle.push(at.to_owned());
                    }
                    cycle.reverse();
                    cycles.push(cycle);
                    break 'search;
                }
                if !parent.contains_key(w) {
                    parent.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
    }
    cycles
}

// ---------------------------------------------------------------------------------------------
// Check 3: the dependency rules.

fn check_crate_rules(ws: &Workspace) -> Vec<String> {
    let lock = lock_packages(&ws.lock);
    let mut violations = Vec::new();
    for rule in CRATE_RULES {
        let Some(krate) = ws.krate(rule.krate) else {
            continue;
        };
        // What the crate's users build: its normal and build dependencies, then theirs
        // (workspace crates from their manifests, others from Cargo.lock).
        let deps_of = |name: &str| -> Vec<String> {
            match ws.krate(name) {
                Some(k) => manifest_deps(&k.manifest)
                    .into_iter()
                    .filter(|d| d.kind != DepKind::Dev)
                    .map(|d| d.package)
                    .collect(),
                None => lock.get(name).cloned().unwrap_or_default(),
            }
        };
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([krate.name.clone()]);
        while let Some(name) = queue.pop_front() {
            for dep in deps_of(&name) {
                if dep != krate.name && !parent.contains_key(&dep) {
                    parent.insert(dep.clone(), name.clone());
                    queue.push_back(dep);
                }
            }
        }
        for forbidden in rule.forbidden {
            if !parent.contains_key(*forbidden) {
                continue;
            }
            let mut chain = vec![forbidden.to_string()];
            while let Some(p) = parent.get(chain.last().unwrap()) {
                chain.push(p.clone());
            }
            chain.reverse();
            let line = manifest_deps(&krate.manifest)
                .iter()
                .find(|d| d.package == chain[1] && d.kind != DepKind::Dev)
                .map_or(0, |d| d.line);
            violations.push(format!(
                "{}:{line}: {} depends on `{forbidden}` ({}): {}",
                krate.manifest_path(),
                rule.krate,
                chain.join(" → "),
                rule.why
            ));
        }
    }
    violations
}

fn check_feature_rules(ws: &Workspace) -> Vec<String> {
    let inherited: BTreeMap<String, Vec<String>> = manifest_deps(&ws.root_package().manifest)
        .into_iter()
        .filter(|d| d.kind == DepKind::Workspace)
        .map(|d| (d.package, d.features))
        .collect();
    let mut violations = Vec::new();
    for rule in FEATURE_RULES {
        let Some(krate) = ws.krate(rule.krate) else {
            continue;
        };
        for dep in manifest_deps(&krate.manifest) {
            if dep.package != rule.dependency || dep.kind == DepKind::Dev {
                continue;
            }
            let mut features = dep.features.clone();
            if dep.workspace {
                features.extend(inherited.get(&dep.package).cloned().unwrap_or_default());
            }
            for feature in features
                .iter()
                .filter(|f| rule.forbidden.contains(&f.as_str()))
            {
                violations.push(format!(
                    "{}:{}: {} turns on feature `{feature}` of {}: {}",
                    krate.manifest_path(),
                    dep.line,
                    rule.krate,
                    rule.dependency,
                    rule.why
                ));
            }
        }
    }
    violations
}

fn check_module_rules(ws: &Workspace) -> Vec<String> {
    let mut violations = Vec::new();
    for rule in MODULE_RULES {
        let Some(krate) = ws.krate(rule.krate) else {
            continue;
        };
        let graph = CrateGraph::build(krate);
        let from = segments(rule.from);
        let in_from = |i: usize| graph.files[i].module.starts_with(&from);
        // Breadth first from every file of `from`, so the first chain found to a file is a
        // shortest one; `via[file]` is the step that reached it.
        let mut order = Vec::new();
        let mut via: BTreeMap<usize, Option<(usize, usize, String)>> = BTreeMap::new();
        for i in (0..graph.files.len()).filter(|i| in_from(*i)) {
            via.insert(i, None);
            order.push(i);
        }
        let mut next = 0;
        while let Some(&i) = order.get(next) {
            next += 1;
            for edge in &graph.edges[i] {
                if let Entry::Vacant(slot) = via.entry(edge.to) {
                    slot.insert(Some((i, edge.line, edge.text.clone())));
                    order.push(edge.to);
                }
            }
        }
        let chain_to = |mut i: usize| {
            let mut steps = Vec::new();
            while let Some(Some((prev, line, text))) = via.get(&i) {
                let file = krate.display(&graph.files[*prev].rel);
                steps.push(format!("{file}:{line} `{text}`"));
                i = *prev;
            }
            steps.reverse();
            steps
        };
        for forbidden in rule.forbidden {
            // Each way in: the chain of references that reaches the forbidden module or path.
            let mut found: Vec<Vec<String>> = Vec::new();
            for &i in &order {
                let file = &graph.files[i];
                match forbidden.strip_prefix("crate::") {
                    Some(module) => {
                        // Where the forbidden module is entered, not each file inside it.
                        let inside =
                            |i: usize| graph.files[i].module.starts_with(&segments(module));
                        let entered_from = via[&i].as_ref().map(|(prev, _, _)| *prev);
                        if inside(i) && !in_from(i) && !entered_from.is_some_and(inside) {
                            found.push(chain_to(i));
                        }
                    }
                    None => {
                        let prefix = segments(forbidden);
                        for r in &file.facts.refs {
                            if matches!(&r.path, Resolved::External(segs) if names_path(segs, &prefix))
                            {
                                let mut steps = chain_to(i);
                                let place = krate.display(&file.rel);
                                steps.push(format!("{place}:{} `{}`", r.line, r.text));
                                found.push(steps);
                            }
                        }
                    }
                }
            }
            let Some(first) = found.first() else {
                continue;
            };
            let more = match found.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            let from = if rule.from.is_empty() {
                "the crate"
            } else {
                rule.from
            };
            violations.push(format!(
                "{}: {from} reaches `{forbidden}`: {}{more}: {}",
                rule.krate,
                first.join(" → "),
                rule.why
            ));
        }
    }
    violations
}

/// Whether a path (a glob ends in `*`) names `prefix` or something inside it.
fn names_path(segs: &[String], prefix: &[String]) -> bool {
    if segs.last().is_some_and(|s| s == "*") {
        let base = &segs[..segs.len() - 1];
        base.starts_with(prefix) || prefix.starts_with(base)
    } else {
        segs.starts_with(prefix)
    }
}

// ---------------------------------------------------------------------------------------------
// A crate's module graph: which file names which.

struct CrateGraph {
    files: Vec<GraphFile>,
    /// For each file, the files of the same library it names.
    edges: Vec<Vec<Edge>>,
}

struct GraphFile {
    rel: String,
    module: Vec<String>,
    facts: FileFacts,
}

struct Edge {
    to: usize,
    line: usize,
    text: String,
}

impl CrateGraph {
    /// The library's files (those with a module path) and the edges between them.
    fn build(krate: &Crate) -> CrateGraph {
        let files: Vec<GraphFile> = krate
            .files
            .iter()
            .filter_map(|f| {
                let module = module_of(&f.rel)?;
                Some(GraphFile {
                    rel: f.rel.clone(),
                    module,
                    facts: FileFacts::of(f),
                })
            })
            .collect();
        let by_module: BTreeMap<&[String], usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.as_slice(), i))
            .collect();
        let edges = files
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let mut out = Vec::new();
                for r in &file.facts.refs {
                    let Resolved::Internal(path) = &r.path else {
                        continue;
                    };
                    if let Some(to) = locate(&files, &by_module, path, 0) {
                        if to != i {
                            out.push(Edge {
                                to,
                                line: r.line,
                                text: r.text.clone(),
                            });
                        }
                    }
                }
                out
            })
            .collect();
        CrateGraph { files, edges }
    }
}

/// The file that defines what an absolute path inside the crate names: walk down the module
/// tree as far as files go, then follow the module's imports (a re-export, public or not, names
/// the item of the module it comes from).
fn locate(
    files: &[GraphFile],
    by_module: &BTreeMap<&[String], usize>,
    path: &[String],
    depth: usize,
) -> Option<usize> {
    let mut at = *by_module.get(&[][..])?;
    for (n, seg) in path.iter().enumerate() {
        if let Some(&child) = by_module.get(&path[..=n]) {
            at = child;
            continue;
        }
        if let Some(Resolved::Internal(target)) = files[at].facts.imports.get(seg) {
            if depth < 8 {
                let mut next = target.clone();
                next.extend_from_slice(&path[n + 1..]);
                return locate(files, by_module, &next, depth + 1).or(Some(at));
            }
        }
        return Some(at);
    }
    Some(at)
}

// ---------------------------------------------------------------------------------------------
// What one file names.

/// A path a file names, resolved as far as the file alone allows.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    /// From the crate root: `crate::store::Batch` is `["store", "Batch"]`.
    Internal(Vec<String>),
    /// Into another crate (or a primitive type: `u32::MAX`): `["tresor_core", "Vault"]`.
    External(Vec<String>),
}

#[derive(Debug)]
struct Ref {
    line: usize,
    /// As written (a `use` group expanded): `crate::keys::records::StoredBytes`.
    text: String,
    path: Resolved,
}

#[derive(Debug, Default)]
struct FileFacts {
    /// Every path the file names: each `use` item and each path in the code.
    refs: Vec<Ref>,
    /// Names the file's top level imports, for following re-exports.
    imports: BTreeMap<String, Resolved>,
}

/// A path as written in a file.
struct Written {
    /// The inline module (`mod tests { … }`) it sits in, relative to the file's module.
    scope: Vec<String>,
    /// A glob ends in `*`.
    segs: Vec<String>,
    /// Starts with `::`: another crate.
    absolute: bool,
    line: usize,
}

impl Written {
    fn text(&self) -> String {
        let lead = if self.absolute { "::" } else { "" };
        format!("{lead}{}", self.segs.join("::"))
    }
}

/// What [`scan`] finds in a file's tokens.
#[derive(Default)]
struct Scanned {
    /// Each `use` item (a group expanded) and the name it binds (`None`: a glob or `as _`).
    uses: Vec<(Written, Option<String>)>,
    /// Every other path of two segments or more (or starting with `::`).
    paths: Vec<Written>,
    /// (inline scope, name) of each `mod name` the file declares.
    declared: BTreeSet<(Vec<String>, String)>,
}

impl FileFacts {
    fn of(file: &SourceFile) -> FileFacts {
        let module = module_of(&file.rel).unwrap_or_default();
        let scanned = scan(&lex(&file.text));
        let resolver = Resolver {
            module: &module,
            scanned: &scanned,
        };
        let mut facts = FileFacts::default();
        for (written, name) in &scanned.uses {
            let Some(path) = resolver.resolve(written, 0) else {
                continue;
            };
            if let (true, Some(name)) = (written.scope.is_empty(), name) {
                facts.imports.insert(name.clone(), path.clone());
            }
            facts.refs.push(Ref {
                line: written.line,
                text: written.text(),
                path,
            });
        }
        for written in &scanned.paths {
            if let Some(path) = resolver.resolve(written, 0) {
                facts.refs.push(Ref {
                    line: written.line,
                    text: written.text(),
                    path,
                });
            }
        }
        facts
    }
}

struct Resolver<'a> {
    /// The file's module.
    module: &'a [String],
    scanned: &'a Scanned,
}

impl Resolver<'_> {
    fn resolve(&self, written: &Written, depth: usize) -> Option<Resolved> {
        let segs = &written.segs;
        let first = segs.first()?;
        if written.absolute {
            return Some(Resolved::External(segs.to_vec()));
        }
        let here = [self.module, &written.scope].concat();
        match first.as_str() {
            "crate" => Some(Resolved::Internal(segs[1..].to_vec())),
            "self" => Some(Resolved::Internal([&here, &segs[1..]].concat())),
            "super" => {
                let up = segs.iter().take_while(|s| *s == "super").count();
                let base = here.get(..here.len().checked_sub(up)?)?;
                Some(Resolved::Internal([base, &segs[up..]].concat()))
            }
            "Self" | "$crate" => None,
            _ => self.resolve_name(written, depth),
        }
    }

    /// A path starting with a plain name: a module declared in this file, a name imported here,
    /// else another crate. Looked up in the path's inline module, then in those around it
    /// (roughly what `use super::*` makes visible in `mod tests`).
    fn resolve_name(&self, written: &Written, depth: usize) -> Option<Resolved> {
        let (scope, segs) = (&written.scope, &written.segs);
        let first = &segs[0];
        for n in (0..=scope.len()).rev() {
            if self
                .scanned
                .declared
                .contains(&(scope[..n].to_vec(), first.clone()))
            {
                return Some(Resolved::Internal(
                    [self.module, &scope[..n], segs].concat(),
                ));
            }
            let import = self
                .scanned
                .uses
                .iter()
                .find(|(u, name)| u.scope == scope[..n] && name.as_ref() == Some(first));
            if let Some((u, _)) = import.filter(|_| depth < 4) {
                return Some(match self.resolve(u, depth + 1)? {
                    Resolved::Internal(p) => Resolved::Internal([&p, &segs[1..]].concat()),
                    Resolved::External(p) => Resolved::External([&p, &segs[1..]].concat()),
                });
            }
        }
        Some(Resolved::External(segs.to_vec()))
    }
}

/// The `use` items, the other paths and the declared modules of a file's tokens, each with the
/// inline module it sits in.
fn scan(tokens: &[Token]) -> Scanned {
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text.as_str());
    let ident = |i: usize| tokens.get(i).is_some_and(|t| t.ident);
    let mut found = Scanned::default();
    // The inline modules around the current token, each with the brace depth it opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let scope_of =
        |inline: &[(String, usize)]| inline.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let mut pending_mod = None;
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match text(i) {
            "{" => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((name, depth));
                }
            }
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "mod" if ident(i + 1) => {
                found
                    .declared
                    .insert((scope_of(&inline), text(i + 1).to_owned()));
                if text(i + 2) == "{" {
                    pending_mod = Some(text(i + 1).to_owned());
                }
                i += 2;
                continue;
            }
            "extern" if text(i + 1) == "crate" && ident(i + 2) => {
                let (scope, line) = (scope_of(&inline), tokens[i].line);
                let segs = vec![text(i + 2).to_owned()];
                found.paths.push(Written {
                    scope,
                    segs,
                    absolute: true,
                    line,
                });
                i += 3;
                continue;
            }
            // Not `impl Trait + use<'a>`.
            "use" if text(i + 1) != "<" => {
                let line = tokens[i].line;
                let mut items = Vec::new();
                let mut j = i + 1;
                use_tree(tokens, &mut j, Vec::new(), false, &mut items);
                for (segs, absolute, name) in items {
                    let scope = scope_of(&inline);
                    found.uses.push((
                        Written {
                            scope,
                            segs,
                            absolute,
                            line,
                        },
                        name,
                    ));
                }
                while j < tokens.len() && text(j) != ";" {
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            _ => {}
        }
        // A path starts at an identifier followed by `::`, unless it continues another path, is a
        // method's turbofish (`.collect::<…>`) or a macro's `$crate`; `::x` starts an absolute one.
        let prev = text(i.wrapping_sub(1));
        let absolute = text(i) == "::" && ident(i + 1) && !ident(i.wrapping_sub(1)) && prev != ">";
        let starts = ident(i) && text(i + 1) == "::" && !matches!(prev, "::" | "." | "$");
        if absolute || starts {
            let mut j = if absolute { i + 1 } else { i };
            let mut segs = vec![text(j).to_owned()];
            let line = tokens[j].line;
            while text(j + 1) == "::" && ident(j + 2) {
                segs.push(text(j + 2).to_owned());
                j += 2;
            }
            if segs.len() > 1 || absolute {
                let scope = scope_of(&inline);
                found.paths.push(Written {
                    scope,
                    segs,
                    absolute,
                    line,
                });
            }
            i = j + 1;
            continue;
        }
        i += 1;
    }
    found
}

/// Parses one use tree at `tokens[*i]`, appending (path, absolute, bound name) for each leaf.
fn use_tree(
    tokens: &[Token],
    i: &mut usize,
    mut path: Vec<String>,
    mut absolute: bool,
    out: &mut Vec<(Vec<String>, bool, Option<String>)>,
) {
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text.as_str());
    if text(*i) == "::" {
        absolute |= path.is_empty();
        *i += 1;
    }
    loop {
        match text(*i) {
            "{" => {
                *i += 1;
                while *i < tokens.len() && text(*i) != "}" {
                    let before = *i;
                    use_tree(tokens, i, path.clone(), absolute, out);
                    if text(*i) == "," {
                        *i += 1;
                    }
                    if *i == before {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            "*" => {
                *i += 1;
                path.push("*".into());
                out.push((path, absolute, None));
                return;
            }
            _ if tokens.get(*i).is_some_and(|t| t.ident) => {
                path.push(text(*i).to_owned());
                *i += 1;
                if text(*i) == "::" {
                    *i += 1;
                    continue;
                }
                if path.len() > 1 && path.last().is_some_and(|s| s == "self") {
                    path.pop();
                }
                let mut name = path.last().cloned();
                if text(*i) == "as" {
                    name = Some(text(*i + 1).to_owned()).filter(|n| n != "_");
                    *i += 2;
                }
                out.push((path, absolute, name));
                return;
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A Rust lexer, just enough to find paths: comments and literals produce nothing a path could be
// mistaken in.

#[derive(Debug)]
struct Token {
    text: String,
    line: usize,
    ident: bool,
}

fn token(text: impl Into<String>, line: usize, ident: bool) -> Token {
    Token {
        text: text.into(),
        line,
        ident,
    }
}

fn lex(source: &str) -> Vec<Token> {
    let s: Vec<char> = source.chars().collect();
    let at = |j: usize| s.get(j).copied().unwrap_or('\0');
    let is_ident_start = |c: char| c.is_alphabetic() || c == '_';
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let start_line = line;
        let literal = || token("\"…\"", start_line, false);
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut nesting = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    nesting += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    nesting -= 1;
                    i += 2;
                    if nesting == 0 {
                        break;
                    }
                } else {
                    line += usize::from(s[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&s, i, &mut line);
            tokens.push(literal());
        } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            i = skip_char(&s, i);
            tokens.push(literal());
        } else if c == '\'' {
            // A lifetime or a label.
            let start = i;
            i += 1;
            while is_ident(at(i)) {
                i += 1;
            }
            tokens.push(token(s[start..i].iter().collect::<String>(), line, false));
        } else if is_ident_start(c) {
            let start = i;
            while is_ident(at(i)) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let hashes = (i..).take_while(|&j| at(j) == '#').count();
            match (word.as_str(), at(i)) {
                ("b" | "c", '"') => {
                    i = skip_string(&s, i, &mut line);
                    tokens.push(literal());
                }
                ("b", '\'') => {
                    i = skip_char(&s, i);
                    tokens.push(literal());
                }
                ("r" | "br" | "cr", '"' | '#') if at(i + hashes) == '"' => {
                    i += hashes + 1;
                    while i < s.len() && !(s[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#')) {
                        line += usize::from(s[i] == '\n');
                        i += 1;
                    }
                    i += hashes + 1;
                    tokens.push(literal());
                }
                // A raw identifier, `r#type`.
                ("r", '#') if is_ident_start(at(i + 1)) => {
                    let start = i + 1;
                    i += 1;
                    while is_ident(at(i)) {
                        i += 1;
                    }
                    tokens.push(token(s[start..i].iter().collect::<String>(), line, true));
                }
                _ => tokens.push(token(word, line, true)),
            }
        } else if c.is_ascii_digit() {
            while is_ident(at(i)) || (at(i) == '.' && at(i + 1).is_ascii_digit()) {
                i += 1;
            }
            tokens.push(literal());
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(token("::", line, false));
            i += 2;
        } else {
            tokens.push(token(c, line, false));
            i += 1;
        }
    }
    tokens
}

/// Skips a `"…"` string starting at `s[i]`, counting the lines it spans.
fn skip_string(s: &[char], mut i: usize, line: &mut usize) -> usize {
    i += 1;
    while i < s.len() && s[i] != '"' {
        if s[i] == '\\' {
            i += 1;
        }
        if i < s.len() && s[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    i + 1
}

/// Skips a character literal (`'x'`, `'\n'`, `'\''`, `'\u{…}'`) starting at `s[i]`.
fn skip_char(s: &[char], i: usize) -> usize {
    // Past the quote and the first character, and past the escaped one after a backslash (which
    // may be a quote itself); then to the closing quote.
    let mut j = i + if s.get(i + 1) == Some(&'\\') { 3 } else { 2 };
    while j < s.len() && s[j] != '\'' {
        j += 1;
    }
    j + 1
}

// ---------------------------------------------------------------------------------------------
// TOML, as much as Cargo manifests and Cargo.lock use.

/// One `key = value` of a TOML file, with the table it is in (`[[package]]` tables numbered so
/// that entries of one instance can be grouped).
struct TomlEntry {
    table: Vec<String>,
    instance: usize,
    key: Vec<String>,
    value: String,
    line: usize,
}

fn toml_entries(text: &str) -> Vec<TomlEntry> {
    let mut entries = Vec::new();
    let mut table = Vec::new();
    let mut instance = 0;
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let line = strip_comment(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('[') {
            let inner = trimmed.trim_start_matches('[').trim_end_matches(']');
            table = split_dotted(inner);
            instance += 1;
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            continue;
        };
        let mut value = value.trim().to_owned();
        // Arrays (and, leniently, tables) may span lines.
        while bracket_balance(&value) > 0 {
            let Some((_, more)) = lines.next() else { break };
            value.push(' ');
            value.push_str(strip_comment(more).trim());
        }
        entries.push(TomlEntry {
            table: table.clone(),
            instance,
            key: split_dotted(key),
            value,
            line: n + 1,
        });
    }
    entries
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = None;
    for (i, c) in line.char_indices() {
        match (c, quoted) {
            ('"' | '\'', None) => quoted = Some(c),
            (q, Some(open)) if q == open => quoted = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

fn bracket_balance(value: &str) -> i32 {
    let mut balance = 0;
    let mut quoted = None;
    for c in value.chars() {
        match (c, quoted) {
            ('"' | '\'', None) => quoted = Some(c),
            (q, Some(open)) if q == open => quoted = None,
            ('[' | '{', None) => balance += 1,
            (']' | '}', None) => balance -= 1,
            _ => {}
        }
    }
    balance
}

/// Splits `a.b."c.d"` or `target.'cfg(unix)'.dependencies` on the dots outside quotes.
fn split_dotted(key: &str) -> Vec<String> {
    split_outside_quotes(key, '.')
        .into_iter()
        .map(|part| {
            part.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned()
        })
        .collect()
}

/// Splits on `sep` outside quotes and brackets.
fn split_outside_quotes(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = None;
    let mut nesting = 0;
    for c in text.chars() {
        match (c, quoted) {
            ('"' | '\'', None) => quoted = Some(c),
            (q, Some(open)) if q == open => quoted = None,
            ('[' | '{', None) => nesting += 1,
            (']' | '}', None) => nesting -= 1,
            (c, None) if c == sep && nesting == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().unwrap().push(c);
    }
    parts
}

/// The strings of a TOML value: `"a"` is `["a"]`, `["a", "b"]` is `["a", "b"]`.
fn toml_strings(value: &str) -> Vec<String> {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    split_outside_quotes(inner, ',')
        .into_iter()
        .map(|s| s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The fields of an inline table `{ a = 1, b = "x" }`.
fn inline_table(value: &str) -> Vec<(String, String)> {
    let inner = value
        .trim()
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .unwrap_or("");
    split_outside_quotes(inner, ',')
        .into_iter()
        .filter_map(|field| {
            let (k, v) = field.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

fn package_name(manifest: &str) -> String {
    toml_entries(manifest)
        .into_iter()
        .find(|e| e.table == ["package"] && e.key == ["name"])
        .map(|e| toml_strings(&e.value).remove(0))
        .expect("a [package] name")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DepKind {
    Normal,
    Dev,
    Build,
    /// `[workspace.dependencies]`: versions and features members inherit.
    Workspace,
}

impl DepKind {
    fn table(self) -> &'static str {
        match self {
            DepKind::Normal => "[dependencies]",
            DepKind::Dev => "[dev-dependencies]",
            DepKind::Build => "[build-dependencies]",
            DepKind::Workspace => "[workspace.dependencies]",
        }
    }
}

#[derive(Debug)]
struct Dep {
    kind: DepKind,
    /// The name the crate's code uses for it.
    name: String,
    /// The crate itself (`package = "…"` when renamed).
    package: String,
    features: Vec<String>,
    workspace: bool,
    line: usize,
}

/// Every dependency a manifest declares, in any of the forms Cargo accepts: `x = "1"`,
/// `x = { … }`, `x.workspace = true`, `[dependencies.x]`, `[target.'cfg(…)'.dependencies]`.
fn manifest_deps(manifest: &str) -> Vec<Dep> {
    let kind_of = |table: &str| match table {
        "dependencies" => Some(DepKind::Normal),
        "dev-dependencies" => Some(DepKind::Dev),
        "build-dependencies" => Some(DepKind::Build),
        _ => None,
    };
    let mut deps: BTreeMap<(usize, String), Dep> = BTreeMap::new();
    for entry in toml_entries(manifest) {
        let mut table: &[String] = &entry.table;
        if table.first().is_some_and(|t| t == "target") && table.len() >= 3 {
            table = &table[2..];
        }
        // (kind, dependency name, attribute path within the dependency)
        let (kind, name, attribute): (DepKind, &str, &[String]) = match table {
            [w, d] if w == "workspace" && d == "dependencies" => {
                (DepKind::Workspace, &entry.key[0], &entry.key[1..])
            }
            [t] => match kind_of(t) {
                Some(kind) => (kind, &entry.key[0], &entry.key[1..]),
                None => continue,
            },
            [t, name] => match kind_of(t) {
                Some(kind) => (kind, name, &entry.key[..]),
                None => continue,
            },
            _ => continue,
        };
        let dep = deps
            .entry((entry.instance, name.to_owned()))
            .or_insert_with(|| Dep {
                kind,
                name: name.to_owned(),
                package: name.to_owned(),
                features: Vec::new(),
                workspace: false,
                line: entry.line,
            });
        let fields = match attribute {
            [] if entry.value.starts_with('{') => inline_table(&entry.value),
            [] => Vec::new(),
            [field] => vec![(field.clone(), entry.value.clone())],
            _ => Vec::new(),
        };
        for (field, value) in fields {
            match field.as_str() {
                "package" => dep.package = toml_strings(&value).remove(0),
                "features" => dep.features.extend(toml_strings(&value)),
                "workspace" => dep.workspace = value == "true",
                _ => {}
            }
        }
    }
    deps.into_values().collect()
}

/// Cargo.lock: each package's dependencies (every version of a name merged: an over-estimate,
/// which is the safe side for "must not depend on").
fn lock_packages(lock: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_instance: BTreeMap<usize, (String, Vec<String>)> = BTreeMap::new();
    for entry in toml_entries(lock)
        .into_iter()
        .filter(|e| e.table == ["package"])
    {
        let package = by_instance.entry(entry.instance).or_default();
        match entry.key[0].as_str() {
            "name" => package.0 = toml_strings(&entry.value).remove(0),
            "dependencies" => {
                package.1 = toml_strings(&entry.value)
                    .into_iter()
                    .map(|d| d.split_whitespace().next().unwrap_or_default().to_owned())
                    .collect();
            }
            _ => {}
        }
    }
    let mut packages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, deps) in by_instance.into_values() {
        packages.entry(name).or_default().extend(deps);
    }
    packages
}

// ---------------------------------------------------------------------------------------------
// Each check, fed a small synthetic violation, reports it.

#[cfg(test)]
mod checks_can_fail {
    use super::*;

    /// (crate name, directory, manifest lines after the package name, (path, text) of files).
    type Text<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

    /// A workspace from text.
    fn synthetic(crates: &[Text], lock: &str) -> Workspace {
        let crates = crates
            .iter()
            .map(|(name, dir, manifest, files)| Crate {
                name: (*name).into(),
                dir: (*dir).into(),
                manifest: format!("[package]\nname = \"{name}\"\n{manifest}"),
                files: files
                    .iter()
                    .map(|(rel, text)| SourceFile {
                        rel: (*rel).into(),
                        text: (*text).into(),
                    })
                    .collect(),
            })
            .collect();
        Workspace {
            crates,
            lock: lock.into(),
        }
    }

    fn one_crate(name: &str, manifest: &str, files: &[(&str, &str)]) -> Workspace {
        synthetic(
            &[("tresor", "", "", &[]), (name, "crates/x", manifest, files)],
            "",
        )
    }

    fn assert_reports(violations: &[String], expected: &[&str]) {
        for e in expected {
            assert!(
                violations.iter().any(|v| v.contains(e)),
                "expected a violation containing {e:?}, got {violations:#?}"
            );
        }
    }

    #[test]
    fn a_primitive_in_code_is_reported_with_file_line_and_crate() {
        let ws = one_crate(
            "tresor-server",
            "",
            &[
                ("src/lib.rs", "mod audit;\nmod api;\n"),
                (
                    "src/audit.rs",
                    "use std::fmt;\nuse sha2::Sha256;\nfn f() {\n    let x: u8 = rand::random();\n    \
                     let y = ::ring::digest::SHA256;\n}\n",
                ),
                ("src/api/mod.rs", "use {hmac::Mac as _, std::io};\n"),
                ("build.rs", "extern crate subtle;\n"),
            ],
        );
        let violations = check_primitives(&ws);
        assert_reports(
            &violations,
            &[
                "crates/x/src/audit.rs:2: `sha2::Sha256` names the primitive crate `sha2`",
                "crates/x/src/audit.rs:4: `rand::random` names the primitive crate `rand`",
                "crates/x/src/audit.rs:5: `::ring::digest::SHA256` names the primitive crate `ring`",
                "crates/x/src/api/mod.rs:1: `hmac::Mac` names the primitive crate `hmac`",
                "crates/x/build.rs:1: `::subtle` names the primitive crate `subtle`",
            ],
        );
        assert_eq!(violations.len(), 5, "{violations:#?}");
    }

    #[test]
    fn modules_named_like_primitives_comments_strings_and_tls_plumbing_are_not_primitives() {
        let ws = one_crate(
            "tresor-core",
            "",
            &[
                (
                    "src/lib.rs",
                    "pub mod keys;\n// sha2::Sha256 in a comment\n/* rand::random() */\n",
                ),
                (
                    "src/keys/mod.rs",
                    "pub mod ring;\nmod hmac;\nfn f() { hmac::g(); ring::h() }\n",
                ),
                (
                    "src/keys/ring.rs",
                    "pub fn h() { let s = \"sha2::Sha256\"; let r = r#\"rand::x\"#; }\n",
                ),
                (
                    "src/keys/hmac.rs",
                    "use super::ring;\npub fn g() { ring::h(); let c = 'a'; }\n",
                ),
                (
                    "src/tls.rs",
                    "use rustls::crypto::ring::default_provider;\nuse crate::keys::ring::h;\n",
                ),
            ],
        );
        assert_eq!(check_primitives(&ws), Vec::<String>::new());
    }

    #[test]
    fn a_primitive_in_a_manifest_is_reported_in_any_form() {
        let ws = one_crate(
            "tresor-client",
            "[dependencies]\nserde = \"1\"\nsha2.workspace = true\ndigest = { package = \"hkdf\", version = \"0.13\" }\n\
             [target.'cfg(unix)'.dependencies]\nring = \"0.17\"\n[dev-dependencies.rand]\nversion = \"0.10\"\n",
            &[],
        );
        let violations = check_primitives(&ws);
        assert_reports(
            &violations,
            &[
                "crates/x/Cargo.toml:5: tresor-client depends on the primitive crate `sha2` ([dependencies])",
                "crates/x/Cargo.toml:6: tresor-client depends on the primitive crate `hkdf`",
                "crates/x/Cargo.toml:8: tresor-client depends on the primitive crate `ring`",
                "depends on the primitive crate `rand` ([dev-dependencies])",
            ],
        );
        assert_eq!(violations.len(), 4, "{violations:#?}");
    }

    #[test]
    fn only_the_provider_and_the_root_packages_tests_are_exempt() {
        let ws = synthetic(
            &[
                (
                    "tresor",
                    "",
                    "[dev-dependencies]\nsha2 = \"0.11\"\ndigest = { package = \"sha2\" }\n",
                    &[
                        (
                            "tests/vault/format.rs",
                            "use sha2::Sha256;\nuse digest::Sha512;\n",
                        ),
                        (
                            "benches/vault.rs",
                            "use sha2::Sha256;\nuse digest::Sha512;\n",
                        ),
                    ],
                ),
                (
                    "tresor-crypto",
                    "crates/crypto",
                    "[dependencies]\nsha2 = \"0.11\"\n",
                    &[("src/lib.rs", "use sha2::Sha256;\n")],
                ),
            ],
            "",
        );
        let violations = check_primitives(&ws);
        assert_reports(
            &violations,
            &[
                "benches/vault.rs:1: `sha2::Sha256` names the primitive crate `sha2`",
                "benches/vault.rs:2: `digest::Sha512` names the primitive crate `sha2`",
            ],
        );
        assert_eq!(violations.len(), 2, "{violations:#?}");
    }

    #[test]
    fn a_cycle_between_top_level_modules_is_reported_with_its_edges() {
        let ws = one_crate(
            "tresor-core",
            "",
            &[
                (
                    "src/lib.rs",
                    "mod error;\nmod store;\nmod keys;\npub use error::Error;\n",
                ),
                ("src/error.rs", "use crate::store::StoreError;\n"),
                (
                    "src/store/mod.rs",
                    "mod sled;\npub use crate::keys::records::StoredBytes;\n",
                ),
                ("src/store/sled.rs", "use super::StoredBytes;\n"),
                ("src/keys/mod.rs", "pub mod records;\n"),
                (
                    "src/keys/records.rs",
                    "fn f() -> crate::Error { todo!() }\n",
                ),
            ],
        );
        let violations = check_cycles(&ws);
        assert_reports(
            &violations,
            &[
                "tresor-core: module cycle error → store → keys → error",
                "error → store: crates/x/src/error.rs:1 `crate::store::StoreError`",
                "keys → error: crates/x/src/keys/records.rs:1 `crate::Error`",
            ],
        );
        assert_eq!(violations.len(), 1, "{violations:#?}");
    }

    #[test]
    fn a_cycle_between_siblings_is_reported_but_parent_and_child_are_not_one() {
        let ws = one_crate(
            "tresor-server",
            "",
            &[
                ("src/lib.rs", "mod api;\n"),
                (
                    "src/api/mod.rs",
                    "mod encrypt;\nmod decrypt;\nmod keys;\nstruct Ctx;\nfn route() { encrypt::handle(); keys::handle(); }\n",
                ),
                (
                    "src/api/encrypt.rs",
                    "use super::Ctx;\npub fn handle() { super::decrypt::shared() }\n",
                ),
                (
                    "src/api/decrypt.rs",
                    "pub fn shared() { super::encrypt::handle() }\n",
                ),
                ("src/api/keys.rs", "use super::{Ctx, encrypt};\n"),
            ],
        );
        let violations = check_cycles(&ws);
        assert_reports(
            &violations,
            &["tresor-server: module cycle api::decrypt → api::encrypt → api::decrypt"],
        );
        assert_eq!(violations.len(), 1, "{violations:#?}");
    }

    #[test]
    fn a_forbidden_crate_is_reported_directly_and_through_other_crates() {
        let lock = "[[package]]\nname = \"sled\"\nversion = \"0.34.7\"\n\n\
                    [[package]]\nname = \"storage-helper\"\nversion = \"1.0.0\"\ndependencies = [\n \"sled\",\n]\n";
        let ws = synthetic(
            &[
                ("tresor", "", "", &[]),
                (
                    "tresor-client",
                    "crates/client",
                    "[dependencies]\nstorage-helper = \"1\"\ntresor-wire.workspace = true\n",
                    &[],
                ),
                (
                    "tresor-wire",
                    "crates/wire",
                    "[dependencies]\ntresor-core = { workspace = true }\n",
                    &[],
                ),
                ("tresor-core", "crates/core", "[dependencies]\n", &[]),
            ],
            lock,
        );
        let violations = check_crate_rules(&ws);
        assert_reports(
            &violations,
            &[
                "crates/client/Cargo.toml:4: tresor-client depends on `sled` \
                 (tresor-client → storage-helper → sled)",
                "crates/client/Cargo.toml:5: tresor-client depends on `tresor-core` \
                 (tresor-client → tresor-wire → tresor-core)",
                "crates/wire/Cargo.toml:4: tresor-wire depends on `tresor-core` (tresor-wire → tresor-core)",
            ],
        );
    }

    #[test]
    fn a_forbidden_feature_is_reported_when_inherited_too() {
        let ws = synthetic(
            &[
                (
                    "tresor",
                    "",
                    "[workspace.dependencies]\nhyper-util = { version = \"0.1\", features = [\"server-auto\"] }\n",
                    &[],
                ),
                (
                    "tresor-client",
                    "crates/client",
                    "[dependencies]\nhyper = { workspace = true, features = [\n  \"client\",\n  \"server\",\n] }\nhyper-util.workspace = true\n",
                    &[],
                ),
            ],
            "",
        );
        let violations = check_feature_rules(&ws);
        assert_reports(
            &violations,
            &[
                "crates/client/Cargo.toml:4: tresor-client turns on feature `server` of hyper",
                "crates/client/Cargo.toml:8: tresor-client turns on feature `server-auto` of hyper-util",
            ],
        );
    }

    #[test]
    fn a_forbidden_module_or_path_is_reported_directly_and_through_other_modules() {
        let ws = one_crate(
            "tresor-server",
            "",
            &[
                (
                    "src/lib.rs",
                    "pub mod approvals;\npub mod pins;\npub mod services;\npub mod audit;\n",
                ),
                ("src/approvals.rs", "use crate::services::Runner;\n"),
                (
                    "src/services.rs",
                    "pub trait Runner {}\nfn f(p: crate::pins::Pins) {}\n",
                ),
                ("src/pins/mod.rs", "mod csr;\npub struct Pins;\n"),
                (
                    "src/pins/csr.rs",
                    "use tresor_wire::approvals::{Approval, Dangerous};\n",
                ),
                ("src/audit/mod.rs", "mod key;\n"),
                (
                    "src/audit/key.rs",
                    "fn f() {\n    let v: Option<tresor_core::Vault> = None;\n}\n",
                ),
            ],
        );
        let violations = check_module_rules(&ws);
        assert_reports(
            &violations,
            &[
                "approvals reaches `crate::pins`: crates/x/src/approvals.rs:1 `crate::services::Runner` → \
                 crates/x/src/services.rs:2 `crate::pins::Pins`",
                "pins reaches `tresor_wire::approvals`: crates/x/src/pins/csr.rs:1 `tresor_wire::approvals::Approval`",
                "audit reaches `tresor_core::Vault`: crates/x/src/audit/key.rs:2 `tresor_core::Vault`",
            ],
        );
    }

    #[test]
    fn keys_reaching_the_facade_in_the_core_is_reported() {
        let ws = one_crate(
            "tresor-core",
            "",
            &[
                (
                    "src/lib.rs",
                    "pub mod keys;\nmod vault;\npub use vault::Vault;\n",
                ),
                ("src/keys/mod.rs", "pub mod records;\n"),
                (
                    "src/keys/records.rs",
                    "use crate::Vault;\nuse tresor_crypto::identity::CustodianPublicKey;\n",
                ),
                ("src/vault/mod.rs", "pub struct Vault;\n"),
            ],
        );
        assert_reports(
            &check_module_rules(&ws),
            &[
                "keys reaches `crate::vault`: crates/x/src/keys/records.rs:1 `crate::Vault`",
                "keys reaches `tresor_crypto::identity`: crates/x/src/keys/records.rs:2",
            ],
        );
    }

    #[test]
    fn the_wire_crate_doing_io_is_reported() {
        let ws = one_crate(
            "tresor-wire",
            "",
            &[("src/lib.rs", "use std::{fs, io::Write};\n")],
        );
        assert_reports(
            &check_module_rules(&ws),
            &["the crate reaches `std::fs`: crates/x/src/lib.rs:1 `std::fs`"],
        );
    }

    #[test]
    fn the_lexer_keeps_lines_and_drops_comments_and_literals() {
        let source = "a /* b\n c */ d\n\"e\nf\" g 'h' 'i: loop {} br#\"j\"# k::l // m\n\
                      '{' '\\'' b'}' '\\u{7d}' r#type";
        let tokens = lex(source);
        let seen: Vec<(&str, usize)> = tokens
            .iter()
            .filter(|t| t.ident)
            .map(|t| (t.text.as_str(), t.line))
            .collect();
        let expected = [
            ("a", 1),
            ("d", 2),
            ("g", 4),
            ("loop", 4),
            ("k", 4),
            ("l", 4),
            ("type", 5),
        ];
        assert_eq!(seen, expected);
        // Braces inside character literals are not braces.
        assert_eq!(tokens.iter().filter(|t| t.text == "{").count(), 1);
    }
}
