//! Platform exports of a signed manifest's accepted pins. Each format says exactly what its
//! platform can enforce and refuses a manifest it cannot express rather than silently weakening
//! it:
//!
//! | format | subdomain scope | expiry | refuses |
//! |---|---|---|---|
//! | `android` (`network_security_config`) | none, all (`includeSubdomains`) | `pin-set expiration` = `enforce_until` | scope `one` |
//! | `trustkit` (plist dictionary) | none, all (`TSKIncludeSubdomains`) | `TSKExpirationDate` = `enforce_until` | scope `one`, fewer than 2 pins |
//! | `nspinneddomains` (Info.plist ATS) | none, all (`NSIncludesSubdomains`) | none (the app must stop enforcing itself) | scope `one` |
//! | `okhttp` (`CertificatePinner`) | none (`host`), one (`host` + `*.host`), all (`**.host`) | none | — |
//! | `json` | everything | everything | — |

use std::fmt::Write as _;

use super::PinError;
use super::manifest::{Envelope, Manifest, SubdomainScope};

/// A platform format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Android `res/xml/network_security_config.xml`.
    Android,
    /// The TrustKit configuration dictionary, as a plist.
    TrustKit,
    /// The `NSAppTransportSecurity` / `NSPinnedDomains` entry of an Info.plist.
    NsPinnedDomains,
    /// OkHttp `CertificatePinner` Kotlin code.
    OkHttp,
    /// The signed envelope itself.
    Json,
}

impl std::str::FromStr for ExportFormat {
    type Err = PinError;
    fn from_str(name: &str) -> Result<Self, PinError> {
        Ok(match name {
            "android" => ExportFormat::Android,
            "trustkit" => ExportFormat::TrustKit,
            "nspinneddomains" => ExportFormat::NsPinnedDomains,
            "okhttp" => ExportFormat::OkHttp,
            "json" => ExportFormat::Json,
            other => {
                return Err(PinError::Input {
                    field: "format",
                    reason: format!(
                        "`{}` is not one of android, trustkit, nspinneddomains, okhttp, json",
                        other.chars().take(32).collect::<String>()
                    ),
                });
            }
        })
    }
}

impl ExportFormat {
    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Android => "android",
            ExportFormat::TrustKit => "trustkit",
            ExportFormat::NsPinnedDomains => "nspinneddomains",
            ExportFormat::OkHttp => "okhttp",
            ExportFormat::Json => "json",
        }
    }
}

fn cannot(format: ExportFormat, reason: String) -> PinError {
    PinError::Export {
        format: format.name(),
        reason,
    }
}

fn refuse_scope_one(format: ExportFormat, manifest: &Manifest) -> Result<(), PinError> {
    if let Some(host) = manifest
        .hosts
        .iter()
        .find(|h| h.subdomains == SubdomainScope::One)
    {
        return Err(cannot(
            format,
            format!(
                "host {} has subdomain scope `one` (direct subdomains only), but this platform can only pin a host alone or with all its subdomains; use scope none or all, or the okhttp/json export",
                host.name
            ),
        ));
    }
    Ok(())
}

/// `YYYY-MM-DD` (UTC) of a Unix time: the date part of the audit log's RFC 3339 time.
pub(crate) fn date(unix: u64) -> String {
    let mut stamp = crate::time::rfc3339(unix, 0);
    stamp.truncate(stamp.find('T').unwrap_or(stamp.len()));
    stamp
}

/// Renders `envelope` (whose payload is `manifest`) in `format`.
pub fn export(
    format: ExportFormat,
    manifest: &Manifest,
    envelope: &Envelope,
) -> Result<String, PinError> {
    if manifest.pins.is_empty() || manifest.hosts.is_empty() {
        return Err(cannot(
            format,
            "the manifest has no pins or no hosts".into(),
        ));
    }
    match format {
        ExportFormat::Json => {
            Ok(serde_json::to_string_pretty(envelope).expect("serializes") + "\n")
        }
        ExportFormat::Android => {
            refuse_scope_one(format, manifest)?;
            let mut out = String::from(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<network-security-config>\n    <domain-config>\n",
            );
            for host in &manifest.hosts {
                let _ = writeln!(
                    out,
                    "        <domain includeSubdomains=\"{}\">{}</domain>",
                    host.subdomains == SubdomainScope::All,
                    host.name
                );
            }
            let _ = writeln!(
                out,
                "        <pin-set expiration=\"{}\">",
                date(manifest.enforce_until)
            );
            for pin in &manifest.pins {
                let _ = writeln!(
                    out,
                    "            <!-- {} {} {} -->\n            <pin digest=\"SHA-256\">{}</pin>",
                    pin.kid,
                    pin.algorithm,
                    pin.state.name(),
                    pin.sha256
                );
            }
            out.push_str("        </pin-set>\n    </domain-config>\n</network-security-config>\n");
            Ok(out)
        }
        ExportFormat::TrustKit => {
            refuse_scope_one(format, manifest)?;
            if manifest.pins.len() < 2 {
                return Err(cannot(
                    format,
                    format!(
                        "TrustKit requires at least 2 pins (one a backup), the manifest has {}",
                        manifest.pins.len()
                    ),
                ));
            }
            let mut out = plist_head();
            out.push_str("<dict>\n\t<key>TSKSwizzleNetworkDelegates</key>\n\t<false/>\n\t<key>TSKPinnedDomains</key>\n\t<dict>\n");
            for host in &manifest.hosts {
                let _ = write!(
                    out,
                    "\t\t<key>{}</key>\n\t\t<dict>\n\t\t\t<key>TSKEnforcePinning</key>\n\t\t\t<true/>\n\t\t\t<key>TSKIncludeSubdomains</key>\n\t\t\t<{}/>\n\t\t\t<key>TSKExpirationDate</key>\n\t\t\t<string>{}</string>\n\t\t\t<key>TSKPublicKeyHashes</key>\n\t\t\t<array>\n",
                    host.name,
                    host.subdomains == SubdomainScope::All,
                    date(manifest.enforce_until)
                );
                for pin in &manifest.pins {
                    let _ = writeln!(out, "\t\t\t\t<string>{}</string>", pin.sha256);
                }
                out.push_str("\t\t\t</array>\n\t\t</dict>\n");
            }
            out.push_str("\t</dict>\n</dict>\n</plist>\n");
            Ok(out)
        }
        ExportFormat::NsPinnedDomains => {
            refuse_scope_one(format, manifest)?;
            let mut out = plist_head();
            out.push_str(
                "<dict>\n\t<key>NSAppTransportSecurity</key>\n\t<dict>\n\t\t<key>NSPinnedDomains</key>\n\t\t<dict>\n",
            );
            for host in &manifest.hosts {
                let _ = write!(
                    out,
                    "\t\t\t<key>{}</key>\n\t\t\t<dict>\n\t\t\t\t<key>NSIncludesSubdomains</key>\n\t\t\t\t<{}/>\n\t\t\t\t<key>NSPinnedLeafIdentities</key>\n\t\t\t\t<array>\n",
                    host.name,
                    host.subdomains == SubdomainScope::All
                );
                for pin in &manifest.pins {
                    let _ = write!(
                        out,
                        "\t\t\t\t\t<dict>\n\t\t\t\t\t\t<key>SPKI-SHA256-BASE64</key>\n\t\t\t\t\t\t<string>{}</string>\n\t\t\t\t\t</dict>\n",
                        pin.sha256
                    );
                }
                out.push_str("\t\t\t\t</array>\n\t\t\t</dict>\n");
            }
            out.push_str("\t\t</dict>\n\t</dict>\n</dict>\n</plist>\n");
            Ok(out)
        }
        ExportFormat::OkHttp => {
            let mut out = format!(
                "// Tresor pin manifest {} version {}; enforce until {} (OkHttp has no expiry: stop enforcing then).\nval certificatePinner = CertificatePinner.Builder()\n",
                manifest.app,
                manifest.version,
                date(manifest.enforce_until)
            );
            for host in &manifest.hosts {
                let patterns: Vec<String> = match host.subdomains {
                    SubdomainScope::None => vec![host.name.clone()],
                    SubdomainScope::One => vec![host.name.clone(), format!("*.{}", host.name)],
                    SubdomainScope::All => vec![format!("**.{}", host.name)],
                };
                for pattern in patterns {
                    for pin in &manifest.pins {
                        let _ = writeln!(out, "    .add(\"{pattern}\", \"sha256/{}\")", pin.sha256);
                    }
                }
            }
            out.push_str("    .build()\n");
            Ok(out)
        }
    }
}

fn plist_head() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_798_675_200), "2026-12-31");
    }
}
