//! Node policies: named, TOML-declared rules over verified evidence.
//!
//! ```toml
//! [[node_policy]]
//! name = "ubuntu-prod"
//! require_event_log = true          # default: true
//! require_secure_boot = true        # SecureBoot variable measured as enabled
//! [node_policy.pcrs.sha256]         # allowed values per quoted PCR
//! "0" = ["d0b9…", "7a3c…"]
//! "7" = ["…"]
//! [node_policy.boot_applications]   # every boot application must be listed
//! sha256 = ["…", "…"]
//! [node_policy.kernels]             # the last boot application on PCR 4
//! sha256 = ["…"]
//! ```
//!
//! Evaluation runs after the quote, the event-log replay and the Certify
//! have been verified, so the facts it reads are the ones the TPM signed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::eventlog::EventLog;
use crate::pcr::PcrValues;
use crate::tpm::HashAlg;

/// A policy as written in the issuer configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePolicyConfig {
    /// The policy's name; appears in the selector `tpm:policy:<name>`.
    pub name: String,
    /// Refuse nodes that send no event log.
    #[serde(default = "default_true")]
    pub require_event_log: bool,
    /// Refuse nodes whose log does not show Secure Boot enabled.
    #[serde(default)]
    pub require_secure_boot: bool,
    /// bank → PCR index → allowed values (hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pcrs: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// bank → allowed boot-application digests (hex). Every
    /// EV_EFI_BOOT_SERVICES_APPLICATION in the log must be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_applications: Option<BTreeMap<String, Vec<String>>>,
    /// bank → allowed kernel digests (hex): the last boot application
    /// measured into PCR 4 (what shim or GRUB loaded last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<BTreeMap<String, Vec<String>>>,
}

fn default_true() -> bool {
    true
}

/// Why a policy configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyConfigError {
    /// The name is empty or has characters not allowed in a selector.
    #[error("node policy name {0:?} must be 1-64 characters of a-z, 0-9, '-', '_' or '.'")]
    BadName(String),
    /// Two policies share a name.
    #[error("node policy name {0:?} is used twice")]
    DuplicateName(String),
    /// A bank name is unknown.
    #[error("node policy {policy:?}: {field}: {reason}")]
    BadField {
        /// The policy.
        policy: String,
        /// The field path, e.g. `pcrs.sha256."24"`.
        field: String,
        /// What was expected.
        reason: String,
    },
}

/// A validated node policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePolicy {
    name: String,
    require_event_log: bool,
    require_secure_boot: bool,
    pcrs: BTreeMap<(HashAlg, u32), BTreeSet<Vec<u8>>>,
    boot_applications: Option<DigestAllowList>,
    kernels: Option<DigestAllowList>,
}

/// One violated rule of one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleViolation {
    /// The rule, e.g. `pcrs.sha256.7`, `require_secure_boot`, `kernels.sha256`.
    pub rule: String,
    /// What the evidence showed.
    pub detail: String,
}

/// The verified facts a policy is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct PolicyFacts<'a> {
    /// The quoted PCR values.
    pub quoted: &'a PcrValues,
    /// The event log, if the node sent one (already replayed against the quote).
    pub event_log: Option<&'a EventLog>,
}

fn parse_digest_list(
    policy: &str,
    field: &str,
    bank: HashAlg,
    list: &[String],
) -> Result<BTreeSet<Vec<u8>>, PolicyConfigError> {
    list.iter()
        .map(|hex_value| {
            let value = hex::decode(hex_value).map_err(|_| PolicyConfigError::BadField {
                policy: policy.to_owned(),
                field: field.to_owned(),
                reason: format!("{hex_value:?} is not hex"),
            })?;
            if value.len() != bank.digest_len() {
                return Err(PolicyConfigError::BadField {
                    policy: policy.to_owned(),
                    field: field.to_owned(),
                    reason: format!(
                        "{hex_value:?} is {} bytes, a {bank} digest is {}",
                        value.len(),
                        bank.digest_len()
                    ),
                });
            }
            Ok(value)
        })
        .collect()
}

fn parse_bank(policy: &str, field: &str, bank: &str) -> Result<HashAlg, PolicyConfigError> {
    bank.parse().map_err(|reason| PolicyConfigError::BadField {
        policy: policy.to_owned(),
        field: field.to_owned(),
        reason,
    })
}

/// One bank's set of allowed digests.
type DigestAllowList = (HashAlg, BTreeSet<Vec<u8>>);

fn parse_single_bank_list(
    policy: &str,
    field: &str,
    lists: &Option<BTreeMap<String, Vec<String>>>,
) -> Result<Option<DigestAllowList>, PolicyConfigError> {
    let Some(lists) = lists else { return Ok(None) };
    let mut entries = lists.iter();
    let (Some((bank, list)), None) = (entries.next(), entries.next()) else {
        return Err(PolicyConfigError::BadField {
            policy: policy.to_owned(),
            field: field.to_owned(),
            reason: "give exactly one bank, e.g. sha256 = [\"…\"]".to_owned(),
        });
    };
    let alg = parse_bank(policy, field, bank)?;
    Ok(Some((
        alg,
        parse_digest_list(policy, &format!("{field}.{bank}"), alg, list)?,
    )))
}

impl NodePolicy {
    /// Validates a configured policy.
    pub fn compile(config: &NodePolicyConfig) -> Result<Self, PolicyConfigError> {
        let name = &config.name;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if !name_ok {
            return Err(PolicyConfigError::BadName(name.clone()));
        }
        let mut pcrs = BTreeMap::new();
        for (bank_name, indexes) in &config.pcrs {
            let bank = parse_bank(name, &format!("pcrs.{bank_name}"), bank_name)?;
            for (index, values) in indexes {
                let field = format!("pcrs.{bank_name}.\"{index}\"");
                let pcr = index
                    .parse::<u32>()
                    .ok()
                    .filter(|&i| i < 24)
                    .ok_or_else(|| PolicyConfigError::BadField {
                        policy: name.clone(),
                        field: field.clone(),
                        reason: "PCR index must be a number from 0 to 23".to_owned(),
                    })?;
                if values.is_empty() {
                    return Err(PolicyConfigError::BadField {
                        policy: name.clone(),
                        field,
                        reason: "list at least one allowed value".to_owned(),
                    });
                }
                pcrs.insert((bank, pcr), parse_digest_list(name, &field, bank, values)?);
            }
        }
        Ok(NodePolicy {
            name: name.clone(),
            require_event_log: config.require_event_log,
            require_secure_boot: config.require_secure_boot,
            pcrs,
            boot_applications: parse_single_bank_list(
                name,
                "boot_applications",
                &config.boot_applications,
            )?,
            kernels: parse_single_bank_list(name, "kernels", &config.kernels)?,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The (bank, PCR) pairs this policy reads; the issuer quotes at least these.
    pub fn required_pcrs(&self) -> impl Iterator<Item = (HashAlg, u32)> + '_ {
        self.pcrs.keys().copied()
    }

    /// Every rule the facts violate; empty means the node satisfies the policy.
    pub fn evaluate(&self, facts: &PolicyFacts<'_>) -> Vec<RuleViolation> {
        let mut violations = Vec::new();
        let mut violate =
            |rule: String, detail: String| violations.push(RuleViolation { rule, detail });
        for ((bank, pcr), allowed) in &self.pcrs {
            let rule = format!("pcrs.{bank}.{pcr}");
            match facts.quoted.get(bank).and_then(|values| values.get(pcr)) {
                None => violate(rule, format!("{bank}:{pcr} was not quoted")),
                Some(value) if !allowed.contains(value) => {
                    violate(
                        rule,
                        format!(
                            "{bank}:{pcr} is {}, not an allowed value",
                            hex::encode(value)
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        let log = facts.event_log;
        if self.require_event_log && log.is_none() {
            violate(
                "require_event_log".to_owned(),
                "the node sent no event log".to_owned(),
            );
        }
        if self.require_secure_boot {
            match log.map(EventLog::secure_boot) {
                None => violate(
                    "require_secure_boot".to_owned(),
                    "no event log to read Secure Boot state from".to_owned(),
                ),
                Some(None) => violate(
                    "require_secure_boot".to_owned(),
                    "the event log does not measure the SecureBoot variable".to_owned(),
                ),
                Some(Some(false)) => violate(
                    "require_secure_boot".to_owned(),
                    "Secure Boot is disabled".to_owned(),
                ),
                Some(Some(true)) => {}
            }
        }
        if let Some((bank, allowed)) = &self.boot_applications {
            let rule = format!("boot_applications.{bank}");
            match log {
                None => violate(
                    rule,
                    "no event log to read boot applications from".to_owned(),
                ),
                Some(log) => {
                    for app in log.boot_applications() {
                        match app.digest(*bank) {
                            Some(digest) if allowed.contains(digest) => {}
                            Some(digest) => violate(
                                rule.clone(),
                                format!(
                                    "boot application {} (event {}) is not allowed",
                                    hex::encode(digest),
                                    app.index
                                ),
                            ),
                            None => violate(
                                rule.clone(),
                                format!("event {} has no {bank} digest", app.index),
                            ),
                        }
                    }
                }
            }
        }
        if let Some((bank, allowed)) = &self.kernels {
            let rule = format!("kernels.{bank}");
            match log.map(|log| kernel_digest(log, *bank)) {
                None => violate(rule, "no event log to read the kernel from".to_owned()),
                Some(None) => violate(
                    rule,
                    "the event log measures no boot application into PCR 4".to_owned(),
                ),
                Some(Some(digest)) if allowed.contains(&digest) => {}
                Some(Some(digest)) => violate(
                    rule,
                    format!("kernel {} is not allowed", hex::encode(digest)),
                ),
            }
        }
        violations
    }
}

/// The digest of the last boot application measured into PCR 4.
pub fn kernel_digest(log: &EventLog, bank: HashAlg) -> Option<Vec<u8>> {
    log.boot_applications()
        .iter()
        .rev()
        .find_map(|app| app.digest(bank).map(<[u8]>::to_vec))
}

/// The outcome of every configured policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PolicyResults {
    /// Names of satisfied policies.
    pub passed: Vec<String>,
    /// Unsatisfied policies with every violated rule.
    pub failed: Vec<(String, Vec<RuleViolation>)>,
}

impl PolicyResults {
    /// A node is accepted when it satisfies at least one policy, or when no
    /// policy is configured (identity-only attestation).
    pub fn accepted(&self) -> bool {
        !self.passed.is_empty() || self.failed.is_empty()
    }

    /// Every violation as `policy: rule: detail`, for the verdict's reason.
    pub fn describe_failures(&self) -> String {
        self.failed
            .iter()
            .flat_map(|(policy, violations)| {
                violations
                    .iter()
                    .map(move |v| format!("{policy}: {}: {}", v.rule, v.detail))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A set of validated policies.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<NodePolicy>,
}

impl PolicySet {
    /// Validates every policy; names must be unique.
    pub fn compile(configs: &[NodePolicyConfig]) -> Result<Self, PolicyConfigError> {
        let mut seen = BTreeSet::new();
        let mut policies = Vec::with_capacity(configs.len());
        for config in configs {
            if !seen.insert(config.name.clone()) {
                return Err(PolicyConfigError::DuplicateName(config.name.clone()));
            }
            policies.push(NodePolicy::compile(config)?);
        }
        Ok(Self { policies })
    }

    /// The policies.
    pub fn policies(&self) -> &[NodePolicy] {
        &self.policies
    }

    /// Evaluates every policy.
    pub fn evaluate(&self, facts: &PolicyFacts<'_>) -> PolicyResults {
        let mut results = PolicyResults::default();
        for policy in &self.policies {
            let violations = policy.evaluate(facts);
            if violations.is_empty() {
                results.passed.push(policy.name.clone());
            } else {
                results.failed.push((policy.name.clone(), violations));
            }
        }
        results
    }
}

/// A policy that accepts exactly the boot recorded in `log`: its SHA-256
/// PCRs 0–7 as replayed, its Secure Boot state, its boot applications and
/// kernel (what Keylime's `create_mb_refstate` does for measured boot).
pub fn policy_from_event_log(name: &str, log: &EventLog) -> NodePolicyConfig {
    let bank = if log.banks().contains(&HashAlg::Sha256) {
        HashAlg::Sha256
    } else {
        HashAlg::Sha1
    };
    let replay = log.replay();
    let mut pcrs = BTreeMap::new();
    if let Some(values) = replay.get(&bank) {
        let chosen: BTreeMap<String, Vec<String>> = values
            .iter()
            .filter(|(pcr, _)| **pcr <= 7)
            .map(|(pcr, value)| (pcr.to_string(), vec![hex::encode(value)]))
            .collect();
        pcrs.insert(bank.name().to_owned(), chosen);
    }
    let apps: Vec<String> = log
        .boot_applications()
        .iter()
        .filter_map(|app| app.digest(bank).map(hex::encode))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let kernel = kernel_digest(log, bank).map(hex::encode);
    NodePolicyConfig {
        name: name.to_owned(),
        require_event_log: true,
        require_secure_boot: log.secure_boot() == Some(true),
        pcrs,
        boot_applications: (!apps.is_empty())
            .then(|| BTreeMap::from([(bank.name().to_owned(), apps)])),
        kernels: kernel.map(|k| BTreeMap::from([(bank.name().to_owned(), vec![k])])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> NodePolicyConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn pcr_rule_reports_the_pcr_and_value() {
        let policy = NodePolicy::compile(&config(&format!(
            "name = \"p\"\nrequire_event_log = false\n[pcrs.sha256]\n\"7\" = [\"{}\"]\n",
            "aa".repeat(32)
        )))
        .unwrap();
        let mut quoted = PcrValues::new();
        quoted
            .entry(HashAlg::Sha256)
            .or_default()
            .insert(7, vec![0xbb; 32]);
        let violations = policy.evaluate(&PolicyFacts {
            quoted: &quoted,
            event_log: None,
        });
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].rule, "pcrs.sha256.7");
        assert!(violations[0].detail.contains(&"bb".repeat(32)));
        quoted
            .get_mut(&HashAlg::Sha256)
            .unwrap()
            .insert(7, vec![0xaa; 32]);
        assert!(
            policy
                .evaluate(&PolicyFacts {
                    quoted: &quoted,
                    event_log: None
                })
                .is_empty()
        );
    }

    #[test]
    fn missing_log_violates_log_and_secure_boot_rules() {
        let policy =
            NodePolicy::compile(&config("name = \"sb\"\nrequire_secure_boot = true\n")).unwrap();
        let violations = policy.evaluate(&PolicyFacts {
            quoted: &PcrValues::new(),
            event_log: None,
        });
        let rules: Vec<_> = violations.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(rules, vec!["require_event_log", "require_secure_boot"]);
    }

    #[test]
    fn bad_configs_are_refused_by_field() {
        let err = NodePolicy::compile(&config("name = \"p\"\n[pcrs.sha256]\n\"24\" = [\"00\"]\n"))
            .unwrap_err();
        assert!(err.to_string().contains("pcrs.sha256.\"24\""), "{err}");
        let err = NodePolicy::compile(&config("name = \"p\"\n[pcrs.sha256]\n\"1\" = [\"00\"]\n"))
            .unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
        let err = NodePolicy::compile(&config("name = \"Bad Name\"\n")).unwrap_err();
        assert!(matches!(err, PolicyConfigError::BadName(_)));
        assert!(
            toml::from_str::<NodePolicyConfig>("name = \"p\"\nrequire_secureboot = true\n")
                .is_err()
        );
    }

    #[test]
    fn results_accept_when_any_policy_passes_or_none_configured() {
        assert!(PolicyResults::default().accepted());
        let failed = PolicyResults {
            passed: vec![],
            failed: vec![("a".into(), vec![])],
        };
        assert!(!failed.accepted());
        let mixed = PolicyResults {
            passed: vec!["b".into()],
            failed: vec![("a".into(), vec![])],
        };
        assert!(mixed.accepted());
    }
}
