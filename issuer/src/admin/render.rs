//! Human-readable text for admin results (the CLI's default output).

use std::fmt::Write as _;

use serde_json::Value;

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// Unix milliseconds as `YYYY-MM-DD hh:mm:ss UTC`.
fn time(v: &Value, key: &str) -> String {
    let Some(ms) = v.get(key).and_then(Value::as_i64) else {
        return "-".to_owned();
    };
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Aligned columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
    out
}

fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:")))
        .collect::<String>()
}

/// One entry.
pub fn entry(e: &Value) -> String {
    fields(&[
        ("ID", s(e, "id")),
        ("SPIFFE ID", s(e, "spiffe_id")),
        ("Selectors", s(e, "selectors")),
        ("Node selectors", s(e, "node_selectors")),
        ("Node ID", s(e, "node_id")),
        ("X509-SVID TTL", ttl(e, "x509_ttl_s")),
        ("JWT-SVID TTL", ttl(e, "jwt_ttl_s")),
        ("DNS names", s(e, "dns_names")),
        ("Hint", s(e, "hint")),
        ("Admin", s(e, "admin")),
        ("Created", time(e, "created")),
        ("Revision", s(e, "revision")),
    ])
}

fn ttl(e: &Value, key: &str) -> String {
    match e.get(key).and_then(Value::as_u64) {
        Some(secs) => format!("{secs}s"),
        None => "default".to_owned(),
    }
}

/// The entry table.
pub fn entries(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                s(e, "id"),
                s(e, "spiffe_id"),
                s(e, "selectors"),
                s(e, "node_selectors"),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no entries\n".to_owned();
    }
    table(&["ID", "SPIFFE ID", "SELECTORS", "NODE SELECTORS"], &rows)
}

/// One node.
pub fn node(n: &Value) -> String {
    let mut out = fields(&[
        ("SPIFFE ID", s(n, "spiffe_id")),
        ("EK SHA-256", s(n, "ek_sha256")),
        ("AK name", s(n, "ak_name")),
        ("Manufacturer", s(n, "manufacturer")),
        ("First seen", time(n, "first_seen")),
        ("Last attested", time(n, "last_attested")),
        ("Last attestation", s(n, "last_attestation_id")),
        ("Secure Boot", s(n, "secure_boot")),
        ("Selectors", s(n, "selectors")),
        ("Banned", banned(n)),
        ("Evicted", s(n, "evicted")),
    ]);
    out.push_str(&pcrs(n.get("last_pcrs")));
    out
}

fn banned(n: &Value) -> String {
    if n.get("banned").and_then(Value::as_bool) == Some(true) {
        format!("yes ({})", s(n, "ban_reason"))
    } else {
        "no".to_owned()
    }
}

/// The node table.
pub fn nodes(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            vec![
                s(n, "spiffe_id"),
                time(n, "last_attested"),
                banned(n),
                s(n, "evicted"),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no nodes have attested yet\n".to_owned();
    }
    table(&["SPIFFE ID", "LAST ATTESTED", "BANNED", "EVICTED"], &rows)
}

/// A ban set or lifted.
pub fn ban(b: &Value, lifted: bool) -> String {
    let head = if lifted { "ban lifted" } else { "banned" };
    format!(
        "{head}: EK {} (reason: {}, by {}, {})\n",
        s(b, "ek_sha256"),
        s(b, "reason"),
        s(b, "banned_by"),
        time(b, "time")
    )
}

fn pcrs(p: Option<&Value>) -> String {
    let mut out = String::new();
    if let Some(Value::Object(banks)) = p {
        for (bank, values) in banks {
            let _ = writeln!(out, "PCRs ({bank}):");
            if let Value::Object(values) = values {
                let mut sorted: Vec<(u32, String)> = values
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.parse().unwrap_or(u32::MAX),
                            v.as_str().unwrap_or("?").to_owned(),
                        )
                    })
                    .collect();
                sorted.sort();
                for (index, value) in sorted {
                    let _ = writeln!(out, "  {index:>2}: {value}");
                }
            }
        }
    }
    out
}

/// The attestation table.
pub fn attestations(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                s(a, "id"),
                time(a, "time"),
                verdict(a),
                s(a, "spiffe_id"),
                s(a, "peer"),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no attestations\n".to_owned();
    }
    table(&["ID", "TIME", "VERDICT", "NODE", "PEER"], &rows)
}

fn verdict(a: &Value) -> String {
    if a.get("accepted").and_then(Value::as_bool) == Some(true) {
        "accepted".to_owned()
    } else {
        format!("refused: {} ({})", s(a, "failed_check"), s(a, "reason"))
    }
}

/// One attestation with its PCR drift.
pub fn attestation(shown: &Value) -> String {
    let a = shown.get("attestation").unwrap_or(&Value::Null);
    let mut out = fields(&[
        ("ID", s(a, "id")),
        ("Time", time(a, "time")),
        ("Node", s(a, "spiffe_id")),
        ("EK SHA-256", s(a, "ek_sha256")),
        ("AK name", s(a, "ak_name")),
        ("Peer", s(a, "peer")),
        ("Nonce", s(a, "nonce")),
        ("Event log SHA-256", s(a, "event_log_sha256")),
        ("Verdict", verdict(a)),
    ]);
    if let Some(policies) = a.get("policies").filter(|p| !p.is_null()) {
        let _ = writeln!(out, "Policies: {policies}");
    }
    out.push_str(&pcrs(a.get("pcrs")));
    match (shown.get("previous_accepted_id"), shown.get("drift")) {
        (Some(Value::Number(prev)), Some(Value::Array(changes))) => {
            if changes.is_empty() {
                let _ = writeln!(
                    out,
                    "PCR drift since attestation {prev}: none (all PCRs unchanged)"
                );
            } else {
                let _ = writeln!(out, "PCR drift since attestation {prev}:");
                for c in changes {
                    let _ = writeln!(
                        out,
                        "  {} PCR {}: {} -> {}",
                        s(c, "bank"),
                        s(c, "pcr"),
                        s(c, "old"),
                        s(c, "new")
                    );
                }
            }
        }
        _ => out.push_str("PCR drift: no earlier accepted attestation of this node\n"),
    }
    out
}

/// Only the X.509 authorities, PEM.
pub fn bundle_pem(b: &Value) -> String {
    b.get("x509_authorities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The trust bundle: PEM roots, then the JWKS.
pub fn bundle(b: &Value) -> String {
    let mut out = format!(
        "Trust domain: {}\n\nX.509 authorities:\n",
        s(b, "trust_domain")
    );
    for pem in b
        .get("x509_authorities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(pem.as_str().unwrap_or_default());
    }
    out.push_str("\nJWKS:\n");
    let jwks = b.get("jwks").unwrap_or(&Value::Null);
    out.push_str(&serde_json::to_string_pretty(jwks).unwrap_or_else(|_| jwks.to_string()));
    out.push('\n');
    out
}
