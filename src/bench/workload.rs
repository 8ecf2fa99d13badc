//! Setting up a run: the tenant and key, the sample ciphertexts, and every request body, built
//! once before the load starts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{BenchError, Operation, Plan};
use tresor_client::{Client, ClientError, ClientSettings, CreateKeyOptions, CryptoOptions};
use tresor_wire::api::transit;

/// The tenant a run creates (and reuses) when none is named.
pub const DEFAULT_TENANT: &str = "bench";
/// The key a run creates (and reuses) when none is named.
pub const DEFAULT_KEY: &str = "bench";

/// One request, ready to send any number of times.
#[derive(Debug, Clone)]
pub struct Template {
    /// What it does.
    pub operation: Operation,
    /// `/v1/<tenant>/<operation>/<key>`.
    pub path: String,
    /// The JSON body.
    pub body: Bytes,
    /// Items it carries.
    pub items: u64,
    /// Payload bytes it carries (plaintext or HMAC input; 32 for a 256-bit data key).
    pub bytes: u64,
}

impl Template {
    /// Whether the answer holds `batch_results` whose items may fail on their own.
    pub fn is_batch(&self) -> bool {
        self.items > 1
    }
}

/// Everything a run sends: the request templates and where they go.
#[derive(Debug, Clone)]
pub struct Workload {
    templates: Vec<Template>,
    /// The tenant used.
    pub tenant: String,
    /// The key used.
    pub key: String,
    /// What setup created (`tenant bench`, `key bench/bench`): reused by later runs, never
    /// deleted (deleting needs a custodian's approval).
    pub created: Vec<String>,
}

impl Workload {
    /// Prepares `plan` against the vault at `settings`: uses `tenant`/`key` as they are when
    /// given, otherwise makes sure tenant [`DEFAULT_TENANT`] and key [`DEFAULT_KEY`] exist
    /// (creating them if needed); encrypts the samples that `decrypt` and `rewrap` need.
    pub async fn prepare(
        settings: &ClientSettings,
        plan: &Plan,
        tenant: Option<&str>,
        key: Option<&str>,
    ) -> Result<Workload, BenchError> {
        let client = Client::new(settings)?;
        let mut created = Vec::new();
        let tenant_name = tenant.unwrap_or(DEFAULT_TENANT).to_owned();
        let key_name = key.unwrap_or(DEFAULT_KEY).to_owned();
        if tenant.is_none() {
            match client.tenant(&tenant_name).await {
                Ok(_) => {}
                Err(ClientError::Api { status: 404, .. }) => {
                    client.create_tenant(&tenant_name, 2, &[]).await?;
                    created.push(format!("tenant {tenant_name}"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if key.is_none() {
            match client.read_key(&tenant_name, &key_name).await {
                Ok(_) => {}
                Err(ClientError::Api { status: 404, .. }) => {
                    client
                        .create_key(&tenant_name, &key_name, &CreateKeyOptions::default())
                        .await?;
                    created.push(format!("key {tenant_name}/{key_name}"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let plaintext = vec![0x5a_u8; plan.size];
        let needs_ciphertexts = matches!(
            plan.operation,
            Operation::Decrypt | Operation::Rewrap | Operation::Mixed
        );
        let ciphertexts = if needs_ciphertexts {
            sample_ciphertexts(&client, &tenant_name, &key_name, &plaintext, plan.batch).await?
        } else {
            Vec::new()
        };
        let operations: &[Operation] = match plan.operation {
            Operation::Mixed => &[
                Operation::Encrypt,
                Operation::Decrypt,
                Operation::Rewrap,
                Operation::DataKey,
                Operation::Hmac,
            ],
            ref one => std::slice::from_ref(one),
        };
        let encoded = STANDARD.encode(&plaintext);
        let templates = operations
            .iter()
            .map(|&operation| {
                template(
                    operation,
                    &tenant_name,
                    &key_name,
                    &encoded,
                    &ciphertexts,
                    plan,
                )
            })
            .collect();
        Ok(Workload {
            templates,
            tenant: tenant_name,
            key: key_name,
            created,
        })
    }

    /// `plan` against `tenant`/`key` of a Vault-compatible peer (OpenBao's transit mounted at
    /// `tenant`): the same paths and bodies as against Tresor, with no setup, since the peer
    /// speaks neither Tresor's tenant API nor its ciphertexts. Operations that need sample
    /// ciphertexts (decrypt, rewrap, mixed) are refused.
    pub fn for_peer(plan: &Plan, tenant: &str, key: &str) -> Result<Workload, BenchError> {
        if matches!(
            plan.operation,
            Operation::Decrypt | Operation::Rewrap | Operation::Mixed
        ) {
            return Err(BenchError::Invalid(format!(
                "{} needs ciphertexts made by the target, which a run against another Vault-compatible server does not set up: use encrypt, hmac or datakey",
                plan.operation
            )));
        }
        let encoded = STANDARD.encode(vec![0x5a_u8; plan.size]);
        Ok(Workload {
            templates: vec![template(plan.operation, tenant, key, &encoded, &[], plan)],
            tenant: tenant.to_owned(),
            key: key.to_owned(),
            created: Vec::new(),
        })
    }

    /// A workload of the given templates (for tests and custom loads).
    pub fn from_templates(templates: Vec<Template>, tenant: &str, key: &str) -> Workload {
        assert!(!templates.is_empty(), "a workload needs a request");
        Workload {
            templates,
            tenant: tenant.to_owned(),
            key: key.to_owned(),
            created: Vec::new(),
        }
    }

    /// The templates; request *g* of a run sends template *g* mod their number.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }
}

async fn sample_ciphertexts(
    client: &Client,
    tenant: &str,
    key: &str,
    plaintext: &[u8],
    count: usize,
) -> Result<Vec<String>, BenchError> {
    let options = CryptoOptions::default();
    if count == 1 {
        let sealed = client.encrypt(tenant, key, plaintext, &options).await?;
        return Ok(vec![sealed.ciphertext]);
    }
    let plaintexts = vec![plaintext; count];
    client
        .encrypt_batch(tenant, key, &plaintexts, &options)
        .await?
        .into_iter()
        .map(|item| {
            item.map(|sealed| sealed.ciphertext).map_err(|e| {
                BenchError::Invalid(format!("the vault refused a sample encryption: {e}"))
            })
        })
        .collect()
}

fn template(
    operation: Operation,
    tenant: &str,
    key: &str,
    plaintext_b64: &str,
    ciphertexts: &[String],
    plan: &Plan,
) -> Template {
    let batch = if operation == Operation::DataKey {
        1
    } else {
        plan.batch
    };
    let (path, field, values): (String, &str, Vec<&str>) = match operation {
        Operation::Encrypt => (
            transit::ENCRYPT.fill(&[tenant, key]),
            "plaintext",
            vec![plaintext_b64; batch],
        ),
        Operation::Decrypt | Operation::Rewrap => (
            match operation {
                Operation::Decrypt => transit::DECRYPT,
                _ => transit::REWRAP,
            }
            .fill(&[tenant, key]),
            "ciphertext",
            ciphertexts.iter().map(String::as_str).collect(),
        ),
        Operation::Hmac => (
            transit::HMAC.fill(&[tenant, key]),
            "input",
            vec![plaintext_b64; batch],
        ),
        Operation::DataKey | Operation::Mixed => (
            transit::DATAKEY.fill(&[tenant, "plaintext", key]),
            "bits",
            Vec::new(),
        ),
    };
    let body = if operation == Operation::DataKey {
        json!({ "bits": 256 })
    } else if batch == 1 {
        json!({ field: values[0] })
    } else {
        let items: Vec<Value> = values.iter().map(|v| json!({ field: v })).collect();
        json!({ "batch_input": items })
    };
    let item_bytes = if operation == Operation::DataKey {
        32
    } else {
        plan.size as u64
    };
    Template {
        operation,
        path: format!("/v1/{path}"),
        body: Bytes::from(serde_json::to_vec(&body).expect("JSON serializes")),
        items: batch as u64,
        bytes: item_bytes * batch as u64,
    }
}
