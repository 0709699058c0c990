//! The admin API: a Unix socket on which root (or the configured
//! `admin_uid`) manages registration entries, nodes, bans and reads
//! attestations and the trust bundle (DESIGN.md §7).
//!
//! # Wire format
//!
//! Newline-delimited JSON, one request and one response per line, so the
//! socket can be driven by hand:
//!
//! ```text
//! $ echo '{"op":"entry_list"}' | socat - UNIX-CONNECT:/run/rootmark/issuer-admin.sock
//! {"ok":true,"result":[…]}
//! ```
//!
//! Requests are [`protocol::Request`] (tagged by `op`); responses are
//! [`protocol::Response`]: `{"ok":true,"result":…}` or
//! `{"ok":false,"error":"…"}`.
//!
//! # Authorisation
//!
//! The kernel tells the server who is calling (`SO_PEERCRED`): uid 0 and
//! the configured `admin_uid` are served, anyone else gets an error and an
//! `admin.denied` audit record. Every change goes through the
//! [`Datastore`](crate::store::Datastore) with
//! [`Actor::Admin`](crate::store::Actor::Admin), which writes its audit
//! record in the same transaction.
//!
//! # Socket permissions
//!
//! A missing parent directory is created mode 0750; the socket is made
//! 0660 (and owned by `admin_uid` when one is configured). An existing
//! directory is left as it is.

pub mod client;
pub mod protocol;
pub mod render;
pub mod server;

pub use client::{AdminClient, ClientError};
pub use protocol::{EntrySpec, Request, Response};
pub use server::{AdminError, AdminService, AdminSocket};
