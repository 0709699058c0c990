-- Rootmark datastore, schema version 1 (SQLite).
--
-- Applied by issuer/src/store/sqlite.rs inside one BEGIN IMMEDIATE
-- transaction together with its schema_version row, so a crash leaves
-- either no schema or all of it.
--
-- Conventions:
--   * every table is STRICT, so a value of the wrong type is refused by
--     SQLite itself instead of being read back as something else;
--   * times are INTEGER Unix milliseconds (UTC);
--   * JSON columns hold compact JSON text written by the issuer;
--   * hashes and TPM names are lowercase hex text.

-- Identifies the file as a Rootmark datastore ('Rmk1'), so the issuer
-- refuses to add its tables to some unrelated SQLite file.
PRAGMA application_id = 1382902577;

-- Nodes that passed attestation at least once. A cache derived from the
-- attestations and admin actions (each of which is audited); the
-- issuer reads it for the clock check and PCR drift.
CREATE TABLE nodes (
    spiffe_id           TEXT PRIMARY KEY,
    ek_sha256           TEXT NOT NULL UNIQUE,
    ak_name             TEXT,
    manufacturer        TEXT,
    first_seen          INTEGER NOT NULL,
    last_attested       INTEGER NOT NULL,
    last_attestation_id INTEGER NOT NULL REFERENCES attestations (id),
    last_pcrs           TEXT NOT NULL,
    reset_count         INTEGER,
    restart_count       INTEGER,
    clock               INTEGER,
    secure_boot         INTEGER CHECK (secure_boot IN (0, 1)),
    selectors           TEXT NOT NULL,
    banned              INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1)),
    ban_reason          TEXT,
    evicted             INTEGER NOT NULL DEFAULT 0 CHECK (evicted IN (0, 1))
) STRICT;

-- Every attestation attempt, accepted or refused. AUTOINCREMENT so an
-- id is never reused, even after a (tampering) delete of the last row:
-- verify_store relies on ids being strictly increasing.
CREATE TABLE attestations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ek_sha256        TEXT,
    spiffe_id        TEXT,
    time             INTEGER NOT NULL,
    accepted         INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    failed_check     TEXT,
    reason           TEXT,
    ak_name          TEXT,
    nonce            TEXT,
    pcrs             TEXT NOT NULL,
    event_log_sha256 TEXT,
    policies         TEXT NOT NULL,
    verdict          TEXT NOT NULL,
    peer             TEXT
) STRICT;
CREATE INDEX attestations_by_ek ON attestations (ek_sha256, id);
CREATE INDEX attestations_by_time ON attestations (time);

-- Registration entries. node_id NULL = match by node selectors only.
-- TTLs NULL = the issuer's configured default at minting time.
CREATE TABLE entries (
    id             TEXT PRIMARY KEY,
    spiffe_id      TEXT NOT NULL,
    node_selectors TEXT NOT NULL,
    node_id        TEXT,
    selectors      TEXT NOT NULL,
    x509_ttl_s     INTEGER,
    jwt_ttl_s      INTEGER,
    dns_names      TEXT NOT NULL,
    hint           TEXT,
    admin          INTEGER NOT NULL CHECK (admin IN (0, 1)),
    created        INTEGER NOT NULL,
    revision       INTEGER NOT NULL
) STRICT;
-- Selectors are stored sorted and deduplicated, so equal entries have
-- equal text and this index refuses duplicates (as SPIRE does).
CREATE UNIQUE INDEX entries_unique
    ON entries (spiffe_id, node_selectors, COALESCE(node_id, ''), selectors);

-- X.509 CA keys. public = DER certificate chain of this CA, itself first;
-- private = PKCS#8 DER (plaintext in this file, which is mode 0600).
CREATE TABLE ca_keys (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    public     BLOB NOT NULL,
    private    BLOB NOT NULL,
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
    created    INTEGER NOT NULL
) STRICT;
-- At most one key signs at a time.
CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (state) WHERE state = 'active';

-- JWT signing keys. public = SubjectPublicKeyInfo DER; private = PKCS#8 DER.
CREATE TABLE jwt_keys (
    kid        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    public     BLOB NOT NULL,
    private    BLOB NOT NULL,
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retired')),
    created    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX jwt_keys_one_active ON jwt_keys (state) WHERE state = 'active';

-- Current bans, by EK (a TPM can be banned before it ever attests).
-- The history of bans and unbans is in the audit log.
CREATE TABLE bans (
    ek_sha256 TEXT PRIMARY KEY,
    reason    TEXT NOT NULL,
    time      INTEGER NOT NULL,
    banned_by TEXT NOT NULL
) STRICT;

-- The hash-chained audit log. See the module docs of issuer/src/store
-- for the exact bytes each hash covers.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;

-- The chain head, updated in the transaction of every append, so that
-- deleting the last audit records is detected.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
