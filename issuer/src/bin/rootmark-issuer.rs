//! `rootmark-issuer`: the issuer's command line.
//!
//! `run` starts the issuer; `entry`, `node`, `attestation` and `bundle`
//! talk to a running issuer over its admin Unix socket; `audit` reads the
//! datastore directly; the rest are offline tools to inspect evidence.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use rootmark_issuer::admin::{AdminClient, EntrySpec, Request, render};
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
    /// Run the issuer: node attestation API and admin socket, until SIGTERM/SIGINT.
    /// Logs go to stderr; set RUST_LOG (e.g. `info`, `rootmark_issuer=debug`).
    Run {
        /// The issuer configuration file.
        #[arg(
            long,
            env = "ROOTMARK_ISSUER_CONFIG",
            default_value = "/etc/rootmark/issuer.toml"
        )]
        config: PathBuf,
    },
    /// Manage registration entries (over the admin socket).
    #[command(subcommand)]
    Entry(EntryCommand),
    /// Inspect, ban, unban and evict nodes (over the admin socket).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Inspect attestation attempts (over the admin socket).
    #[command(subcommand)]
    Attestation(AttestationCommand),
    /// Show the trust bundle (over the admin socket).
    #[command(subcommand)]
    Bundle(BundleCommand),
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
enum EntryCommand {
    /// Create a registration entry.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// The SPIFFE ID matching workloads get, e.g. spiffe://example.org/web.
        #[arg(long)]
        spiffe_id: String,
        /// A workload selector TYPE:VALUE (e.g. unix:uid:1000); repeat for more (all must match).
        #[arg(long = "selector", value_name = "TYPE:VALUE", required = true)]
        selectors: Vec<String>,
        /// A node selector TYPE:VALUE (e.g. tpm:policy:prod); repeat for more.
        #[arg(long = "node-selector", value_name = "TYPE:VALUE")]
        node_selectors: Vec<String>,
        /// The one node (SPIFFE ID) the entry is for.
        #[arg(long)]
        node_id: Option<String>,
        /// X509-SVID lifetime, e.g. 1h (default: the issuer's svid.x509_ttl).
        #[arg(long, value_name = "DURATION")]
        x509_ttl: Option<String>,
        /// JWT-SVID lifetime, e.g. 5m (default: the issuer's svid.jwt_ttl).
        #[arg(long, value_name = "DURATION")]
        jwt_ttl: Option<String>,
        /// A DNS name for the X509-SVID; repeat for more.
        #[arg(long = "dns", value_name = "NAME")]
        dns_names: Vec<String>,
        /// The SVID hint.
        #[arg(long)]
        hint: Option<String>,
        /// The identity may use the admin API.
        #[arg(long)]
        admin: bool,
    },
    /// List every entry.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show one entry.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The entry ID.
        id: String,
    },
    /// Delete an entry.
    Delete {
        #[command(flatten)]
        config: ConfigArg,
        /// The entry ID.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// List the nodes that have attested.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show a node (ID: node SPIFFE ID or EK hash).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// Node SPIFFE ID or EK hash.
        id: String,
    },
    /// Ban a TPM: its next attestation and renewal are refused. An EK hash
    /// may be banned before it ever attests.
    Ban {
        #[command(flatten)]
        config: ConfigArg,
        /// Node SPIFFE ID or EK hash.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Lift a ban.
    Unban {
        #[command(flatten)]
        config: ConfigArg,
        /// Node SPIFFE ID or EK hash.
        id: String,
    },
    /// Evict a node: it must attest in full (credential activation) again.
    Evict {
        #[command(flatten)]
        config: ConfigArg,
        /// Node SPIFFE ID or EK hash.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AttestationCommand {
    /// List recent attestation attempts, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this node's (SPIFFE ID or EK hash).
        #[arg(long)]
        node: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one attempt: PCR values, the verdict, and the PCR drift from the
    /// node's previous accepted attestation.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The attestation ID.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Print the X.509 roots (PEM) and the SPIFFE bundle (JWKS).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// Print only the X.509 authorities as PEM: the file an attestor's
        /// `issuer.bundle_path` needs.
        #[arg(long)]
        pem: bool,
    },
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
        Command::Run { config } => issuer::run(&config),
        Command::Entry(command) => admin_entry(command),
        Command::Node(command) => admin_node(command),
        Command::Attestation(command) => admin_attestation(command),
        Command::Bundle(BundleCommand::Show { config, pem }) => admin_call(
            &config,
            &Request::BundleShow,
            if pem {
                render::bundle_pem
            } else {
                render::bundle
            },
        ),
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

/// The admin socket of the issuer configured at `config`.
fn admin_socket(config: &Path) -> Result<PathBuf> {
    let config = rootmark_issuer::config::IssuerConfig::load(config)
        .context("set --config or ROOTMARK_ISSUER_CONFIG to the issuer's configuration file")?;
    Ok(config.admin_socket)
}

/// Sends one request and prints its result as text (`render`) or JSON.
fn admin_call(
    config: &ConfigArg,
    request: &Request,
    render: fn(&serde_json::Value) -> String,
) -> Result<ExitCode> {
    let socket = admin_socket(&config.config)?;
    let result = AdminClient::connect(&socket).and_then(|mut client| client.call(request));
    match (result, config.output) {
        (Ok(value), OutputFormat::Json) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        (Ok(value), OutputFormat::Text) => {
            print!("{}", render(&value));
            Ok(ExitCode::SUCCESS)
        }
        (Err(error), OutputFormat::Json) => {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": error.to_string()})
            );
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
        (Err(error), OutputFormat::Text) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `--x509-ttl` / `--jwt-ttl` in seconds.
fn ttl_seconds(flag: &str, text: Option<String>) -> Result<Option<u32>> {
    let Some(text) = text else { return Ok(None) };
    let duration = rootmark_issuer::config::parse_duration(&text)
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    let seconds = u32::try_from(duration.as_secs())
        .ok()
        .filter(|&s| s > 0)
        .with_context(|| format!("{flag} {text:?} must be between 1s and 136 years"))?;
    Ok(Some(seconds))
}

fn admin_entry(command: EntryCommand) -> Result<ExitCode> {
    match command {
        EntryCommand::Create {
            config,
            spiffe_id,
            selectors,
            node_selectors,
            node_id,
            x509_ttl,
            jwt_ttl,
            dns_names,
            hint,
            admin,
        } => {
            for selector in selectors.iter().chain(&node_selectors) {
                match selector.split_once(':') {
                    Some((kind, value)) if !kind.is_empty() && !value.is_empty() => {}
                    _ => bail!("selector '{selector}' must be TYPE:VALUE (e.g. unix:uid:1000)"),
                }
            }
            let entry = EntrySpec {
                spiffe_id,
                selectors,
                node_selectors,
                node_id,
                x509_ttl_s: ttl_seconds("--x509-ttl", x509_ttl)?,
                jwt_ttl_s: ttl_seconds("--jwt-ttl", jwt_ttl)?,
                dns_names,
                hint,
                admin,
            };
            admin_call(&config, &Request::EntryCreate { entry }, render::entry)
        }
        EntryCommand::List { config } => admin_call(&config, &Request::EntryList, render::entries),
        EntryCommand::Show { config, id } => {
            admin_call(&config, &Request::EntryShow { id }, render::entry)
        }
        EntryCommand::Delete { config, id } => {
            admin_call(&config, &Request::EntryDelete { id }, |e| {
                format!(
                    "deleted entry {} ({})\n",
                    e["id"].as_str().unwrap_or("?"),
                    e["spiffe_id"].as_str().unwrap_or("?")
                )
            })
        }
    }
}

fn admin_node(command: NodeCommand) -> Result<ExitCode> {
    match command {
        NodeCommand::List { config } => admin_call(&config, &Request::NodeList, render::nodes),
        NodeCommand::Show { config, id } => {
            admin_call(&config, &Request::NodeShow { id }, render::node)
        }
        NodeCommand::Ban { config, id, reason } => {
            admin_call(&config, &Request::NodeBan { id, reason }, |b| {
                render::ban(b, false)
            })
        }
        NodeCommand::Unban { config, id } => admin_call(&config, &Request::NodeUnban { id }, |b| {
            render::ban(b, true)
        }),
        NodeCommand::Evict { config, id } => admin_call(&config, &Request::NodeEvict { id }, |n| {
            format!(
                "evicted {}: it must attest in full before it gets a node SVID again\n",
                n["spiffe_id"].as_str().unwrap_or("?")
            )
        }),
    }
}

fn admin_attestation(command: AttestationCommand) -> Result<ExitCode> {
    match command {
        AttestationCommand::List {
            config,
            node,
            limit,
        } => admin_call(
            &config,
            &Request::AttestationList {
                node,
                limit: Some(limit),
            },
            render::attestations,
        ),
        AttestationCommand::Show { config, id } => admin_call(
            &config,
            &Request::AttestationShow { id },
            render::attestation,
        ),
    }
}

/// `rootmark-issuer run`.
mod issuer {
    use std::path::Path;
    use std::process::ExitCode;
    use std::sync::Arc;

    use anyhow::{Context as _, Result, bail};
    use rootmark_issuer::admin::{AdminService, AdminSocket};
    use rootmark_issuer::ca::{JwtAuthority, JwtConfig, SystemClock};
    use rootmark_issuer::config::IssuerConfig;
    use rootmark_issuer::service::issuance::{IssuanceParts, IssuanceService, run_issuance_api};
    use rootmark_issuer::service::{NodeAttestationService, run_node_api};
    use rootmark_issuer::store::{Datastore, SqliteStore};
    use tokio::signal::unix::{SignalKind, signal};

    fn init_tracing() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // A second init (never in practice) is harmless: keep the first.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }

    /// Loads the config, starts both servers, stops on SIGTERM/SIGINT.
    pub fn run(config_path: &Path) -> Result<ExitCode> {
        init_tracing();
        let config = IssuerConfig::load(config_path)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(serve(config))
    }

    async fn serve(config: IssuerConfig) -> Result<ExitCode> {
        let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let setup = config.clone();
        let (service, store, jwt) = tokio::task::spawn_blocking(move || -> Result<_> {
            let service = NodeAttestationService::from_config(&setup)
                .context("cannot set up the node attestation API")?;
            let store: Arc<dyn Datastore> = Arc::new(
                SqliteStore::open_in_dir(&setup.data_dir).context("cannot open the datastore")?,
            );
            let trust_domain = service.ca().trust_domain().clone();
            let jwt = JwtAuthority::open(
                JwtConfig::new(trust_domain).with_key_ttl(setup.ca.jwt_key_ttl.0),
                &setup.data_dir.join("jwt"),
                Arc::new(SystemClock),
            )
            .context("cannot open the JWT signing keys (data_dir/jwt)")?;
            Ok((service, store, Arc::new(jwt)))
        })
        .await
        .context("issuer setup task failed")??;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} (listen in the config)", config.listen)
            })?;
        let address = listener.local_addr().context("node API listener address")?;
        let issuance_listener = tokio::net::TcpListener::bind(&config.issuance_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (issuance_listen in the config)",
                    config.issuance_listen
                )
            })?;
        let issuance_address = issuance_listener
            .local_addr()
            .context("issuance API listener address")?;
        let mut parts = IssuanceParts::new(
            Arc::clone(&store),
            Arc::clone(service.ca()),
            Arc::clone(&jwt),
        );
        parts.x509_ttl = config.svid.x509_ttl.0;
        parts.jwt_ttl = config.svid.jwt_ttl.0;
        let issuance = IssuanceService::new(parts);
        let rotation = rootmark_issuer::ca::schedule::rotate_forever(
            Arc::clone(service.ca()),
            Arc::clone(&jwt),
            rootmark_issuer::ca::schedule::ROTATION_CHECK_PERIOD,
        );
        let admin = AdminService::new(store, Arc::clone(service.ca()), jwt, config.admin_uid);
        let socket = AdminSocket::bind(&config.admin_socket, config.admin_uid)?;
        tracing::info!(
            listen = %address,
            issuance_listen = %issuance_address,
            admin_socket = %config.admin_socket.display(),
            trust_domain = %config.trust_domain,
            "rootmark-issuer running"
        );
        tokio::select! {
            result = run_node_api(service, listener) => {
                result.context("the node attestation API stopped")?;
                bail!("the node attestation API stopped unexpectedly");
            }
            result = run_issuance_api(issuance, issuance_listener) => {
                result.context("the issuance API stopped")?;
                bail!("the issuance API stopped unexpectedly");
            }
            () = socket.serve(Arc::new(admin)) => {
                bail!("the admin socket stopped unexpectedly");
            }
            () = rotation => bail!("the key rotation task stopped unexpectedly"),
            _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
        }
        tracing::info!("rootmark-issuer stopped");
        Ok(ExitCode::SUCCESS)
    }
}
