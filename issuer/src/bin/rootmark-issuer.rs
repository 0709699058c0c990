//! `rootmark-issuer`: the issuer's command line.
//!
//! Today it holds the offline tools an admin uses to inspect evidence; `run`
//! and the admin commands arrive with the issuer service.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use rootmark_issuer::eventlog::{EventLog, EventLogLimits, replay_json_pretty};
use rootmark_issuer::policy::policy_from_event_log;
use rootmark_issuer::quote::verify_quote;
use rootmark_issuer::tpm::{AttestBody, TpmsAttest};
use rootmark_issuer::tpm2_tools::{PemTemplate, load_public, parse_pcr_file};

/// Rootmark issuer: verifies TPM attestation evidence and mints SPIFFE identities.
#[derive(Debug, Parser)]
#[command(name = "rootmark-issuer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect TCG event logs.
    #[command(subcommand)]
    Eventlog(EventlogCommand),
    /// Verify TPM quotes made with tpm2-tools.
    #[command(subcommand)]
    Quote(QuoteCommand),
    /// Make credential-activation challenges.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Write node policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check and export the tamper-evident audit log. Reads the datastore
    /// file directly, so it works with the issuer stopped.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// Where the issuer's configuration is, for commands that read its data.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The issuer configuration file.
    #[arg(
        long,
        env = "ROOTMARK_ISSUER_CONFIG",
        default_value = "/etc/rootmark/issuer.toml"
    )]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the audit hash chain and cross-check every table against it.
    /// Exits 0 with the record count and head hash, or 1 naming the first
    /// broken record.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Also require these previously exported heads (`SEQ:HASH`) to still be in the chain.
        #[arg(long = "checkpoint", value_name = "SEQ:HASH")]
        checkpoints: Vec<String>,
    },
    /// Write every audit record as JSON lines to stdout (after verifying the chain).
    Export {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
enum EventlogCommand {
    /// Replay a TCG event log (crypto-agile or legacy SHA-1) and print the
    /// resulting PCR values of every bank it carries.
    Replay {
        /// The binary event log, e.g. /sys/kernel/security/tpm0/binary_bios_measurements.
        file: PathBuf,
        /// Print JSON: {"sha1": {"0": "hex", …}, "sha256": {…}}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum QuoteCommand {
    /// Verify a quote: signature by the AK, TPM_GENERATED magic, quote type,
    /// nonce, and the PCR values' digest. Exits 0 and prints the PCRs when
    /// valid; exits 1 with the reason otherwise.
    Verify {
        /// AK public key: TPM2B_PUBLIC (tpm2_createak -u) or PEM (tpm2_createak -f pem).
        #[arg(long)]
        ak: PathBuf,
        /// The quoted TPMS_ATTEST (tpm2_quote -m).
        #[arg(long)]
        quote: PathBuf,
        /// The TPMT_SIGNATURE (tpm2_quote -s).
        #[arg(long)]
        sig: PathBuf,
        /// The PCR values (tpm2_quote -o, serialized or values format).
        #[arg(long)]
        pcrs: PathBuf,
        /// The qualifying data given to tpm2_quote -q, as hex.
        #[arg(long)]
        nonce: String,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialCommand {
    /// MakeCredential in software: wrap SECRET for the TPM holding EK, usable
    /// only by the object named AK_NAME. `tpm2_activatecredential -i BLOB`
    /// and the attestor can read the output.
    Make {
        /// EK public key: TPM2B_PUBLIC (tpm2_createek -u) or PEM (default EK template assumed).
        #[arg(long)]
        ek_pub: PathBuf,
        /// The name of the key the credential is bound to (tpm2_createak -n), as hex.
        #[arg(long)]
        name: String,
        /// The secret to wrap, as hex (at most the size of the EK's name hash).
        #[arg(long)]
        secret: String,
        /// Where to write the tpm2-tools credential file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print a node policy (TOML) that accepts exactly the boot recorded in an
    /// event log: SHA-256 PCRs 0-7, Secure Boot state, boot applications and kernel.
    FromEventlog {
        /// The binary event log.
        file: PathBuf,
        /// The policy's name.
        #[arg(long, default_value = "from-eventlog")]
        name: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} file {}", path.display()))
}

/// The datastore file of the issuer configured at `config`.
fn store_path(config: &Path) -> Result<PathBuf> {
    let config = rootmark_issuer::config::IssuerConfig::load(config)
        .context("set --config or ROOTMARK_ISSUER_CONFIG to the issuer's configuration file")?;
    let db = rootmark_issuer::store::SqliteStore::path_in(&config.data_dir);
    if !db.exists() {
        bail!(
            "no datastore at {} (data_dir in the config); has the issuer run yet?",
            db.display()
        );
    }
    Ok(db)
}

/// `SEQ:HASH` as printed by `audit verify`.
fn parse_checkpoint(text: &str) -> Result<rootmark_issuer::store::AuditHead> {
    let (seq, hash) = text
        .split_once(':')
        .context("a checkpoint is SEQ:HASH, as `audit verify` prints the head")?;
    Ok(rootmark_issuer::store::AuditHead {
        seq: seq.parse().context("checkpoint SEQ must be a number")?,
        hash: hash.to_owned(),
    })
}

fn parse_log(path: &Path) -> Result<EventLog> {
    let bytes = read(path, "event log")?;
    EventLog::parse(&bytes, &EventLogLimits::default())
        .with_context(|| format!("{} is not a valid TCG event log", path.display()))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Eventlog(EventlogCommand::Replay { file, json }) => {
            let log = parse_log(&file)?;
            let replay = log.replay();
            if json {
                println!("{}", replay_json_pretty(&replay));
            } else {
                for (bank, values) in &replay {
                    println!("{bank}:");
                    for (pcr, value) in values {
                        println!("  {pcr:>2}: {}", hex::encode(value));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Quote(QuoteCommand::Verify {
            ak,
            quote,
            sig,
            pcrs,
            nonce,
        }) => {
            let nonce =
                hex::decode(nonce.trim_start_matches("0x")).context("--nonce must be hex")?;
            let ak = load_public(&read(&ak, "AK")?, "--ak", PemTemplate::Signing)?;
            let attest = read(&quote, "quote message")?;
            let signature = read(&sig, "signature")?;
            // The PCR file is read in the quote's selection order; a body that
            // does not parse is reported by the verifier with its reason.
            let selection = match TpmsAttest::from_bytes(&attest) {
                Ok(TpmsAttest {
                    body: AttestBody::Quote { selection, .. },
                    ..
                }) => Some(selection),
                _ => None,
            };
            let values = match &selection {
                Some(selection) => parse_pcr_file(&read(&pcrs, "PCR")?, selection)?,
                None => Default::default(),
            };
            match verify_quote(&ak, &attest, &signature, &values, &nonce) {
                Ok(verified) => {
                    println!(
                        "quote: valid ({})",
                        verified.selection.to_tpm2_tools_string()
                    );
                    for (bank, values) in &verified.pcrs {
                        println!("{bank}:");
                        for (pcr, value) in values {
                            println!("  {pcr:>2}: {}", hex::encode(value));
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("quote: invalid: {error} [{}]", error.code());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Credential(CredentialCommand::Make {
            ek_pub,
            name,
            secret,
            out,
        }) => {
            let ek = load_public(&read(&ek_pub, "EK public")?, "--ek-pub", PemTemplate::Ek)?;
            let name = hex::decode(name.trim_start_matches("0x")).context("--name must be hex")?;
            let secret =
                hex::decode(secret.trim_start_matches("0x")).context("--secret must be hex")?;
            if secret.is_empty() {
                bail!("--secret must not be empty");
            }
            let made = rootmark_issuer::credential::make_credential(&ek, &name, &secret)?;
            std::fs::write(&out, made.to_tpm2_tools_file())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "credential for {} written to {}",
                hex::encode(&name),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify {
            config,
            checkpoints,
        }) => {
            let db = store_path(&config.config)?;
            let checkpoints = checkpoints
                .iter()
                .map(|c| parse_checkpoint(c))
                .collect::<Result<Vec<_>>>()?;
            let result = if checkpoints.is_empty() {
                rootmark_issuer::store::verify_store(&db).map(|report| report.audit)
            } else {
                rootmark_issuer::store::verify_audit_chain_with(&db, &checkpoints)
            };
            match result {
                Ok(summary) => {
                    match config.output {
                        OutputFormat::Json => println!(
                            "{}",
                            serde_json::json!({"ok": true, "records": summary.records, "head": summary.head})
                        ),
                        OutputFormat::Text => println!(
                            "audit log intact: {} records, head {}:{}",
                            summary.records, summary.head.seq, summary.head.hash
                        ),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    match config.output {
                        OutputFormat::Json => println!(
                            "{}",
                            serde_json::json!({"ok": false, "error": error.to_string()})
                        ),
                        OutputFormat::Text => eprintln!("audit log BROKEN: {error}"),
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit(AuditCommand::Export { config }) => {
            let db = store_path(&config.config)?;
            let mut stdout = std::io::stdout().lock();
            rootmark_issuer::store::export_audit(&db, &mut stdout)
                .with_context(|| format!("cannot export the audit log of {}", db.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::FromEventlog { file, name }) => {
            let log = parse_log(&file)?;
            let config = policy_from_event_log(&name, &log);
            #[derive(serde::Serialize)]
            struct Document {
                node_policy: Vec<rootmark_issuer::policy::NodePolicyConfig>,
            }
            let document = Document {
                node_policy: vec![config],
            };
            print!(
                "{}",
                toml::to_string(&document).context("cannot render the policy")?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
