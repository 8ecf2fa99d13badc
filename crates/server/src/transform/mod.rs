//! Transform roles, transformations and templates per tenant: Vault's Transform secrets engine
//! at `/v1/<tenant>/transform/` (docs/anonymize.md). A service beside the vault core: it holds a
//! [`SealedStore`] and nothing else, so every record is barrier-sealed with its path in the AAD
//! and every commit goes through the ledger.
//!
//! Records, all under `transform/<tenant>/`:
//! - `template/<name>`: a regex and an alphabet (the built-in templates are code, not records);
//! - `transformation/<name>`: its type (`fpe`, `pseudonym`, `masking`), template, tweak source,
//!   mask character, allowed roles and, for `fpe`, its one AES-256 key;
//! - `role/<name>`: its transformations and its own pseudonym key.
//!
//! **Key versions.** FF1 output carries no version, so an FPE key does not rotate in place:
//! a transformation has exactly one key (reported as version 1) for its whole life, and decode
//! always uses it. Rotating is creating a new transformation, adding it to the role, re-encoding
//! with it (`transformation` names it) and, once nothing encoded with the old one is kept,
//! deleting the old one (which destroys its key). Changing the type or template of an existing
//! transformation is refused for the same reason.

pub mod template;

use serde::{Deserialize, Serialize};
use tresor_core::store::{Batch, StoredBytes};
use tresor_core::{Error, SealedRecords, SealedStore};
use tresor_crypto::format_preserving::{Alphabet, Ff1, FormatError, Pseudonym};
use tresor_crypto::{LengthPrefixed, SecretKey};
use zeroize::Zeroizing;

use self::template::{Action, BUILTINS, Template, TemplateError};

/// Why a transform request was refused. Never carries a value being transformed.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// No such role, transformation or template in the tenant.
    #[error("{what} `{name}` does not exist in tenant `{tenant}`")]
    NotFound {
        /// `role`, `transformation` or `template`.
        what: &'static str,
        /// Its name.
        name: String,
        /// The tenant.
        tenant: String,
    },
    /// The request is invalid as a whole.
    #[error("{0}")]
    Invalid(String),
    /// The value or template was refused.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The vault refused (sealed, tenant missing or locked, storage).
    #[error(transparent)]
    Vault(#[from] Error),
}

impl From<FormatError> for TransformError {
    fn from(e: FormatError) -> Self {
        TransformError::Template(TemplateError::Format(e))
    }
}

/// A transformation's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// FF1, reversible.
    Fpe,
    /// Keyed, shaped, irreversible (per-role key).
    Pseudonym,
    /// Mask characters.
    Masking,
}

impl Kind {
    /// Parses Vault's `type` field.
    pub fn parse(text: &str) -> Result<Kind, TransformError> {
        match text {
            "fpe" => Ok(Kind::Fpe),
            "pseudonym" => Ok(Kind::Pseudonym),
            "masking" => Ok(Kind::Masking),
            "tokenization" => Err(TransformError::Invalid(
                "transformation type `tokenization` is not offered; the types are fpe, pseudonym and masking".into(),
            )),
            other => Err(TransformError::Invalid(format!(
                "unknown transformation type `{}`; the types are fpe, pseudonym and masking",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }

    /// Vault's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fpe => "fpe",
            Kind::Pseudonym => "pseudonym",
            Kind::Masking => "masking",
        }
    }
}

/// Where an FPE transformation's tweak comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TweakSource {
    /// Derived from the tenant and transformation names.
    Internal,
    /// Given with every encode and decode (base64, 1 to 32 bytes).
    Supplied,
}

/// A stored template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateRecord {
    /// `regex`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The pattern.
    pub pattern: String,
    /// The alphabet's name.
    pub alphabet: String,
}

/// What a transformation is made from.
#[derive(Debug, Clone)]
pub struct TransformationSpec {
    /// Its type.
    pub kind: Kind,
    /// Its template's name.
    pub template: String,
    /// Where FPE tweaks come from.
    pub tweak_source: TweakSource,
    /// The masking character.
    pub masking_character: char,
    /// Roles that may use it (`*`: every role).
    pub allowed_roles: Vec<String>,
}

/// A stored transformation.
#[derive(Serialize, Deserialize)]
pub struct TransformationRecord {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Its template's name.
    pub template: String,
    /// Where FPE tweaks come from.
    pub tweak_source: TweakSource,
    /// The masking character.
    pub masking_character: char,
    /// Roles that may use it.
    pub allowed_roles: Vec<String>,
    /// Creation time (Unix seconds).
    pub created_at: u64,
    /// The FF1 key (fpe only): one for the transformation's life (see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<StoredBytes>,
}

impl std::fmt::Debug for TransformationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformationRecord")
            .field("kind", &self.kind)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// A stored role.
#[derive(Serialize, Deserialize)]
pub struct RoleRecord {
    /// Its transformations.
    pub transformations: Vec<String>,
    /// Creation time (Unix seconds).
    pub created_at: u64,
    /// The role's pseudonym key: two roles' pseudonyms of one value differ.
    pseudonym_key: StoredBytes,
}

impl std::fmt::Debug for RoleRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleRecord")
            .field("transformations", &self.transformations)
            .finish_non_exhaustive()
    }
}

/// The three kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// Roles.
    Role,
    /// Transformations.
    Transformation,
    /// Templates.
    Template,
}

impl Object {
    fn name(self) -> &'static str {
        match self {
            Object::Role => "role",
            Object::Transformation => "transformation",
            Object::Template => "template",
        }
    }
}

fn path(tenant: &str, object: Object, name: &str) -> String {
    format!("transform/{tenant}/{}/{name}", object.name())
}

fn prefix(tenant: &str, object: Object) -> String {
    format!("transform/{tenant}/{}/", object.name())
}

fn check_name(what: &'static str, name: &str) -> Result<(), TransformError> {
    tresor_core::keys::validate_key_name(name).map_err(|_| {
        TransformError::Invalid(format!(
            "invalid {what} name `{}`",
            name.chars().take(64).collect::<String>()
        ))
    })
}

/// Most transformations a role names.
pub const MAX_ROLE_TRANSFORMATIONS: usize = 64;

/// Roles, transformations and templates, kept in the vault's sealed records.
#[derive(Clone)]
pub struct Transforms {
    store: SealedStore,
}

impl Transforms {
    /// The transforms of the vault behind `store`.
    pub fn new(store: SealedStore) -> Self {
        Transforms { store }
    }

    fn records(&self) -> Result<SealedRecords, TransformError> {
        Ok(self.store.records()?)
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        records: &SealedRecords,
        tenant: &str,
        object: Object,
        name: &str,
    ) -> Result<(T, Vec<u8>), TransformError> {
        records
            .get::<T>(&path(tenant, object, name))?
            .ok_or_else(|| TransformError::NotFound {
                what: object.name(),
                name: name.to_owned(),
                tenant: tenant.to_owned(),
            })
    }

    fn put<T: Serialize>(
        &self,
        records: &SealedRecords,
        tenant: &str,
        object: Object,
        name: &str,
        before: Option<Vec<u8>>,
        record: &T,
    ) -> Result<(), TransformError> {
        let path = path(tenant, object, name);
        records.commit(
            Batch::new()
                .expect(path.clone(), before)
                .put(path.clone(), records.seal(&path, record)),
        )?;
        Ok(())
    }

    /// Names of a tenant's roles, transformations or templates, sorted.
    pub fn list(&self, tenant: &str, object: Object) -> Result<Vec<String>, TransformError> {
        let records = self.records()?;
        let prefix = prefix(tenant, object);
        Ok(match object {
            Object::Role => records
                .scan::<RoleRecord>(&prefix)?
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>(),
            Object::Transformation => records
                .scan::<TransformationRecord>(&prefix)?
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
            Object::Template => records
                .scan::<TemplateRecord>(&prefix)?
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
        }
        .into_iter()
        .map(|p| p[prefix.len()..].to_owned())
        .collect())
    }

    /// Deletes a role, transformation or template (deleting an fpe transformation destroys its
    /// key: what it encoded can no longer be decoded). A template still used is refused.
    pub fn delete(&self, tenant: &str, object: Object, name: &str) -> Result<(), TransformError> {
        check_name(object.name(), name)?;
        let records = self.records()?;
        let path = path(tenant, object, name);
        let Some((_, raw)) = records.get::<serde_json::Value>(&path)? else {
            return Ok(());
        };
        if object == Object::Template {
            let users: Vec<String> = records
                .scan::<TransformationRecord>(&prefix(tenant, Object::Transformation))?
                .into_iter()
                .filter(|(_, t)| t.template == name)
                .map(|(p, _)| p.rsplit('/').next().unwrap_or_default().to_owned())
                .collect();
            if !users.is_empty() {
                return Err(TransformError::Invalid(format!(
                    "template `{name}` is used by transformation(s) {}: delete or change them first",
                    users.join(", ")
                )));
            }
        }
        records.commit(Batch::new().expect(path.clone(), Some(raw)).delete(path))?;
        Ok(())
    }

    /// Deletes every role, transformation (with its key) and template of `tenant`: run when
    /// the tenant is shredded, so that its transform keys go with it and a tenant created later
    /// under the same name starts empty.
    pub fn purge_tenant(&self, tenant: &str) -> Result<usize, TransformError> {
        let records = self.records()?;
        let prefix = format!("transform/{tenant}/");
        let paths: Vec<String> = records
            .scan::<serde_json::Value>(&prefix)?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        if paths.is_empty() {
            return Ok(0);
        }
        let batch = paths.iter().fold(Batch::new(), |b, p| b.delete(p.clone()));
        records.commit(batch)?;
        records.purge_stale()?;
        Ok(paths.len())
    }

    /// Creates or replaces a regex template, refused when its domain is under 10⁶.
    pub fn put_template(
        &self,
        tenant: &str,
        name: &str,
        record: &TemplateRecord,
    ) -> Result<(), TransformError> {
        check_name("template", name)?;
        if record.kind != "regex" {
            return Err(TransformError::Invalid(format!(
                "template type `{}` is not offered; templates are `regex`",
                record.kind.chars().take(32).collect::<String>()
            )));
        }
        Template::regex(name, &record.pattern, &record.alphabet)?;
        let records = self.records()?;
        let before = records
            .get::<TemplateRecord>(&path(tenant, Object::Template, name))?
            .map(|(_, raw)| raw);
        self.put(&records, tenant, Object::Template, name, before, record)
    }

    /// A template: a built-in or one of the tenant's.
    pub fn template(&self, tenant: &str, name: &str) -> Result<TemplateRecord, TransformError> {
        if BUILTINS.contains(&name) {
            return Ok(TemplateRecord {
                kind: "builtin".into(),
                pattern: String::new(),
                alphabet: String::new(),
            });
        }
        check_name("template", name)?;
        Ok(self
            .get(&self.records()?, tenant, Object::Template, name)?
            .0)
    }

    fn compile(
        &self,
        records: &SealedRecords,
        tenant: &str,
        name: &str,
    ) -> Result<Template, TransformError> {
        if let Some(t) = Template::builtin(name) {
            return Ok(t);
        }
        check_name("template", name)?;
        let (record, _) = self.get::<TemplateRecord>(records, tenant, Object::Template, name)?;
        Ok(Template::regex(name, &record.pattern, &record.alphabet)?)
    }

    /// Creates a transformation (an fpe one gets its key), or changes the allowed roles and
    /// masking character of an existing one; a new type or template is refused.
    pub fn put_transformation(
        &self,
        tenant: &str,
        name: &str,
        spec: &TransformationSpec,
    ) -> Result<(), TransformError> {
        check_name("transformation", name)?;
        for role in &spec.allowed_roles {
            if role != "*" {
                check_name("role", role)?;
            }
        }
        let records = self.records()?;
        self.compile(&records, tenant, &spec.template)?;
        let existing =
            records.get::<TransformationRecord>(&path(tenant, Object::Transformation, name))?;
        let (record, before) = match existing {
            Some((old, raw)) => {
                if old.kind != spec.kind
                    || old.template != spec.template
                    || old.tweak_source != spec.tweak_source
                {
                    return Err(TransformError::Invalid(format!(
                        "transformation `{name}` exists with type {}, template {} and tweak source {:?}: \
                         these do not change (what it encoded must stay decodable); create a new transformation",
                        old.kind.name(),
                        old.template,
                        old.tweak_source
                    )));
                }
                (
                    TransformationRecord {
                        masking_character: spec.masking_character,
                        allowed_roles: spec.allowed_roles.clone(),
                        ..old
                    },
                    Some(raw),
                )
            }
            None => (
                TransformationRecord {
                    kind: spec.kind,
                    template: spec.template.clone(),
                    tweak_source: spec.tweak_source,
                    masking_character: spec.masking_character,
                    allowed_roles: spec.allowed_roles.clone(),
                    created_at: self.store.clock().now(),
                    key: (spec.kind == Kind::Fpe)
                        .then(|| StoredBytes::new(SecretKey::random().expose().to_vec())),
                },
                None,
            ),
        };
        self.put(
            &records,
            tenant,
            Object::Transformation,
            name,
            before,
            &record,
        )
    }

    /// A transformation.
    pub fn transformation(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<TransformationRecord, TransformError> {
        check_name("transformation", name)?;
        Ok(self
            .get(&self.records()?, tenant, Object::Transformation, name)?
            .0)
    }

    /// Creates a role (with its own pseudonym key) or changes its transformations.
    pub fn put_role(
        &self,
        tenant: &str,
        name: &str,
        transformations: &[String],
    ) -> Result<(), TransformError> {
        check_name("role", name)?;
        if transformations.is_empty() || transformations.len() > MAX_ROLE_TRANSFORMATIONS {
            return Err(TransformError::Invalid(format!(
                "a role names 1 to {MAX_ROLE_TRANSFORMATIONS} transformations"
            )));
        }
        for t in transformations {
            check_name("transformation", t)?;
        }
        let records = self.records()?;
        let existing = records.get::<RoleRecord>(&path(tenant, Object::Role, name))?;
        let (record, before) = match existing {
            Some((old, raw)) => (
                RoleRecord {
                    transformations: transformations.to_vec(),
                    ..old
                },
                Some(raw),
            ),
            None => (
                RoleRecord {
                    transformations: transformations.to_vec(),
                    created_at: self.store.clock().now(),
                    pseudonym_key: StoredBytes::new(SecretKey::random().expose().to_vec()),
                },
                None,
            ),
        };
        self.put(&records, tenant, Object::Role, name, before, &record)
    }

    /// A role.
    pub fn role(&self, tenant: &str, name: &str) -> Result<RoleRecord, TransformError> {
        check_name("role", name)?;
        Ok(self.get(&self.records()?, tenant, Object::Role, name)?.0)
    }

    /// What encodes and decodes for `role` with `transformation` (needed when the role has
    /// more than one).
    pub fn coder(
        &self,
        tenant: &str,
        role: &str,
        transformation: Option<&str>,
    ) -> Result<Coder, TransformError> {
        check_name("role", role)?;
        let records = self.records()?;
        let (role_record, _) = self.get::<RoleRecord>(&records, tenant, Object::Role, role)?;
        let name = match transformation.filter(|t| !t.is_empty()) {
            Some(t) => {
                if !role_record.transformations.iter().any(|x| x == t) {
                    return Err(TransformError::Invalid(format!(
                        "transformation `{}` is not one of role `{role}`'s",
                        t.chars().take(64).collect::<String>()
                    )));
                }
                t.to_owned()
            }
            None if role_record.transformations.len() == 1 => {
                role_record.transformations[0].clone()
            }
            None => {
                return Err(TransformError::Invalid(format!(
                    "role `{role}` has {} transformations: name one in `transformation`",
                    role_record.transformations.len()
                )));
            }
        };
        let (record, _) =
            self.get::<TransformationRecord>(&records, tenant, Object::Transformation, &name)?;
        if !record.allowed_roles.iter().any(|r| r == "*" || r == role) {
            return Err(TransformError::Invalid(format!(
                "role `{role}` is not in transformation `{name}`'s allowed_roles"
            )));
        }
        let template = self.compile(&records, tenant, &record.template)?;
        let key_bytes = match record.kind {
            Kind::Fpe => record.key.as_ref(),
            Kind::Pseudonym => Some(&role_record.pseudonym_key),
            Kind::Masking => None,
        };
        let key = key_bytes
            .map(|k| {
                SecretKey::from_slice(&k.0).ok_or_else(|| {
                    TransformError::Vault(Error::RecordFormat {
                        path: path(tenant, Object::Transformation, &name),
                        reason: "the key is not 32 bytes".into(),
                    })
                })
            })
            .transpose()?;
        if record.kind == Kind::Fpe && key.is_none() {
            return Err(TransformError::Vault(Error::RecordFormat {
                path: path(tenant, Object::Transformation, &name),
                reason: "an fpe transformation without its key".into(),
            }));
        }
        let base_tweak = LengthPrefixed::new()
            .bytes(b"tresor-transform-v1")
            .bytes(tenant.as_bytes())
            .bytes(name.as_bytes());
        let base_tweak = match record.kind {
            Kind::Pseudonym => base_tweak.bytes(role.as_bytes()),
            _ => base_tweak,
        };
        Ok(Coder {
            ff1: std::sync::Mutex::new(Vec::new()),
            kind: record.kind,
            transformation: name,
            template,
            key,
            tweak_source: record.tweak_source,
            masking_character: record.masking_character,
            base_tweak: base_tweak.into_vec(),
        })
    }
}

/// Encodes and decodes values with one transformation for one role.
pub struct Coder {
    /// FF1 per alphabet, keyed once (an AES key schedule) for every value of a request.
    ff1: std::sync::Mutex<Vec<std::sync::Arc<Ff1>>>,
    kind: Kind,
    transformation: String,
    template: Template,
    key: Option<SecretKey>,
    tweak_source: TweakSource,
    masking_character: char,
    base_tweak: Vec<u8>,
}

/// Longest supplied tweak, in bytes.
pub const MAX_TWEAK: usize = 32;

impl Coder {
    /// FF1 under `key` over `alphabet`, made once per alphabet.
    fn ff1(&self, key: &SecretKey, alphabet: &Alphabet) -> std::sync::Arc<Ff1> {
        let mut made = self.ff1.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ff1) = made.iter().find(|f| f.alphabet() == alphabet) {
            return ff1.clone();
        }
        let ff1 = std::sync::Arc::new(Ff1::new(key, alphabet.clone()));
        made.push(ff1.clone());
        ff1
    }

    /// The transformation's name.
    pub fn transformation(&self) -> &str {
        &self.transformation
    }

    /// The transformation's type.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn tweak(&self, supplied: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>, TransformError> {
        let mut tweak = Zeroizing::new(self.base_tweak.clone());
        match (self.kind, self.tweak_source, supplied) {
            (Kind::Fpe, TweakSource::Supplied, Some(t))
                if !t.is_empty() && t.len() <= MAX_TWEAK =>
            {
                let lp = LengthPrefixed::new().bytes(t);
                tweak.extend_from_slice(lp.as_slice());
            }
            (Kind::Fpe, TweakSource::Supplied, _) => {
                return Err(TransformError::Invalid(format!(
                    "transformation `{}` takes a supplied tweak: give `tweak`, base64 of 1 to {MAX_TWEAK} bytes",
                    self.transformation
                )));
            }
            (_, _, Some(t)) if !t.is_empty() => {
                return Err(TransformError::Invalid(format!(
                    "transformation `{}` takes no tweak",
                    self.transformation
                )));
            }
            _ => {}
        }
        Ok(tweak)
    }

    /// The encoded value.
    pub fn encode(
        &self,
        value: &str,
        tweak: Option<&[u8]>,
    ) -> Result<Zeroizing<String>, TransformError> {
        let tweak = self.tweak(tweak)?;
        match self.kind {
            Kind::Fpe => {
                let key = self.key.as_ref().expect("checked when made");
                let map = |a: &Alphabet, s: &str| self.ff1(key, a).encrypt(&tweak, s);
                Ok(self.template.apply(value, &Action::Map(&map))?)
            }
            Kind::Pseudonym => {
                let prf = Pseudonym::new(self.key.as_ref().expect("checked when made"));
                let map = |a: &Alphabet, s: &str| prf.map(a, &tweak, s);
                Ok(self.template.apply(value, &Action::Map(&map))?)
            }
            Kind::Masking => Ok(self
                .template
                .apply(value, &Action::Mask(self.masking_character))?),
        }
    }

    /// The decoded value (fpe only: pseudonyms and masks are irreversible).
    pub fn decode(
        &self,
        value: &str,
        tweak: Option<&[u8]>,
    ) -> Result<Zeroizing<String>, TransformError> {
        if self.kind != Kind::Fpe {
            return Err(TransformError::Invalid(format!(
                "transformation `{}` is of type {}: it cannot be decoded",
                self.transformation,
                self.kind.name()
            )));
        }
        let tweak = self.tweak(tweak)?;
        let key = self.key.as_ref().expect("checked when made");
        let map = |a: &Alphabet, s: &str| self.ff1(key, a).decrypt(&tweak, s);
        Ok(self.template.apply(value, &Action::Map(&map))?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tresor_core::{SledStore, TenantSpec, Vault, VaultOptions};
    use tresor_crypto::identity::CustodianIdentity;
    use tresor_wire::custody::InitRequest;

    use super::*;
    use crate::policy::{AccessRequest, PolicySet};

    /// Shredding a tenant purges its transforms: nothing of them stays in the store, another
    /// tenant's stay, and a tenant of the same name created later starts empty.
    #[test]
    fn a_purged_tenant_keeps_no_transform_records() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(
            Arc::new(SledStore::open(dir.path()).unwrap()),
            VaultOptions::new("test"),
        )
        .unwrap();
        let alice = CustodianIdentity::generate("alice").unwrap();
        vault
            .init(&InitRequest {
                custodians: vec![alice.public().clone()],
                threshold: 1,
                four_eyes: None,
            })
            .unwrap();
        let share = vault.sealed_share("alice").unwrap().open(&alice).unwrap();
        vault.unseal(vec![share]).unwrap();
        vault.create_tenant("a", &TenantSpec::default()).unwrap();
        let transforms = Transforms::new(vault.sealed_store());
        let spec = TransformationSpec {
            kind: Kind::Fpe,
            template: "builtin/bsn".into(),
            tweak_source: TweakSource::Internal,
            masking_character: '*',
            allowed_roles: vec!["r".into()],
        };
        for tenant in ["a", "b"] {
            transforms.put_transformation(tenant, "t", &spec).unwrap();
            transforms.put_role(tenant, "r", &["t".into()]).unwrap();
        }
        assert_eq!(transforms.purge_tenant("a").unwrap(), 2);
        assert!(matches!(
            transforms.role("a", "r"),
            Err(TransformError::NotFound { .. })
        ));
        assert!(
            transforms
                .list("a", Object::Transformation)
                .unwrap()
                .is_empty()
        );
        assert!(transforms.role("b", "r").is_ok());
        assert_eq!(transforms.purge_tenant("a").unwrap(), 0);
    }

    /// policies/analyst.example.toml: the pipeline encodes and cannot decode, the officer
    /// decodes and cannot encode, an analyst gets nothing.
    #[test]
    fn the_analyst_example_policy_separates_encode_and_decode() {
        let operations = crate::operations();
        let set = PolicySet::from_files(
            operations,
            &[(
                "policies/analyst.example.toml",
                include_str!("../../../../policies/analyst.example.toml"),
            )],
        )
        .unwrap();
        assert!(set.warnings().is_empty(), "{:?}", set.warnings());
        let allowed = |principal: &str, operation: &str, source: &str| {
            set.authorize(&AccessRequest {
                principal,
                operation: operations.parse(operation).unwrap(),
                tenant: Some("payroll"),
                key: Some("analytics"),
                source: Some(source.parse().unwrap()),
            })
            .is_allowed()
        };
        let pipeline = "spiffe://prod.example/payroll-extract-pipeline";
        let dpo = "spiffe://prod.example/payroll-dpo";
        let analyst = "spiffe://prod.example/analyst-jane";
        assert!(allowed(pipeline, "transform-encode", "10.30.7.5"));
        assert!(!allowed(pipeline, "transform-encode", "10.99.0.1"));
        assert!(!allowed(pipeline, "transform-decode", "10.30.7.5"));
        assert!(allowed(dpo, "transform-decode", "10.1.1.1"));
        assert!(!allowed(dpo, "transform-encode", "10.1.1.1"));
        for op in [
            "transform-encode",
            "transform-decode",
            "transform-read",
            "hmac",
        ] {
            assert!(!allowed(analyst, op, "10.30.7.5"), "{op}");
        }
    }
}
