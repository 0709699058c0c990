#![allow(clippy::unwrap_used)]

use rustls::{ClientConnection, ServerConnection};

use super::*;
use crate::bundle::X509BundleSet;
use crate::test_pki::TestCa;
use crate::workload::X509Context;

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// A fixed source holding an SVID for `svid_id` from `issuer` and the
/// bundles of `trusted`.
fn source(issuer: &TestCa, svid_id: &str, trusted: &[&TestCa]) -> Arc<X509Source> {
    let bundles: X509BundleSet = trusted.iter().map(|ca| ca.bundle()).collect();
    Arc::new(X509Source::fixed(
        X509Context::new(vec![issuer.svid(svid_id)], bundles).unwrap(),
    ))
}

/// Runs a handshake in memory; returns both connections or the first error.
fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
) -> Result<(ClientConnection, ServerConnection), (&'static str, rustls::Error)> {
    let mut client = ClientConnection::new(
        Arc::new(client),
        ServerName::try_from("any.name.works").unwrap(),
    )
    .unwrap();
    let mut server = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..10 {
        transfer(
            &mut Connection::from(&mut client),
            &mut Connection::from(&mut server),
        )
        .map_err(|e| ("server", e))?;
        transfer(
            &mut Connection::from(&mut server),
            &mut Connection::from(&mut client),
        )
        .map_err(|e| ("client", e))?;
        if !client.is_handshaking() && !server.is_handshaking() {
            // Deliver the server's last flight (e.g. tickets) so errors surface.
            return Ok((client, server));
        }
    }
    panic!("handshake did not finish");
}

/// Moves `from`'s pending TLS bytes into `to` and lets `to` process them.
fn transfer(from: &mut Connection<'_>, to: &mut Connection<'_>) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut slice = buf.as_slice();
    while !slice.is_empty() {
        to.read_tls(&mut slice).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

// rustls::Connection is an enum of owned connections; adapt borrowed ones.
enum Connection<'a> {
    Client(&'a mut ClientConnection),
    Server(&'a mut ServerConnection),
}

impl<'a> From<&'a mut ClientConnection> for Connection<'a> {
    fn from(c: &'a mut ClientConnection) -> Self {
        Connection::Client(c)
    }
}

impl<'a> From<&'a mut ServerConnection> for Connection<'a> {
    fn from(c: &'a mut ServerConnection) -> Self {
        Connection::Server(c)
    }
}

impl Connection<'_> {
    fn wants_write(&self) -> bool {
        match self {
            Connection::Client(c) => c.wants_write(),
            Connection::Server(c) => c.wants_write(),
        }
    }
    fn write_tls(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Connection::Client(c) => c.write_tls(out),
            Connection::Server(c) => c.write_tls(out),
        }
    }
    fn read_tls(&mut self, input: &mut &[u8]) -> std::io::Result<usize> {
        match self {
            Connection::Client(c) => c.read_tls(input),
            Connection::Server(c) => c.read_tls(input),
        }
    }
    fn process_new_packets(&mut self) -> Result<(), rustls::Error> {
        match self {
            Connection::Client(c) => c.process_new_packets().map(|_| ()),
            Connection::Server(c) => c.process_new_packets().map(|_| ()),
        }
    }
}

const SERVER: &str = "spiffe://example.org/server";
const CLIENT: &str = "spiffe://example.org/client";

#[test]
fn mutual_tls_with_authorized_peers() {
    let ca = TestCa::new("example.org");
    let server_source = source(&ca, SERVER, &[&ca]);
    let client_source = source(&ca, CLIENT, &[&ca]);
    let (client, server) = handshake(
        client_config(client_source, Authorizer::exact(id(SERVER))).unwrap(),
        server_config(server_source, Authorizer::exact(id(CLIENT))).unwrap(),
    )
    .unwrap();
    assert_eq!(peer_spiffe_id(&client), Some(id(SERVER)));
    assert_eq!(peer_spiffe_id(&server), Some(id(CLIENT)));
}

#[test]
fn intermediate_chains_verify() {
    let root = TestCa::new("example.org");
    let intermediate = root.intermediate();
    let (client, server) = handshake(
        client_config(source(&intermediate, CLIENT, &[&root]), Authorizer::any()).unwrap(),
        server_config(source(&intermediate, SERVER, &[&root]), Authorizer::any()).unwrap(),
    )
    .unwrap();
    assert_eq!(peer_spiffe_id(&server), Some(id(CLIENT)));
    assert_eq!(peer_spiffe_id(&client), Some(id(SERVER)));
}

#[test]
fn client_refuses_an_unauthorized_server() {
    let ca = TestCa::new("example.org");
    let result = handshake(
        client_config(
            source(&ca, CLIENT, &[&ca]),
            Authorizer::exact(id("spiffe://example.org/other")),
        )
        .unwrap(),
        server_config(source(&ca, SERVER, &[&ca]), Authorizer::any()).unwrap(),
    );
    match result {
        Err(("client", rustls::Error::InvalidCertificate(e))) => {
            assert!(format!("{e:?}").contains("not authorized"), "{e:?}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("handshake succeeded"),
    }
}

#[test]
fn server_refuses_an_unauthorized_client() {
    let ca = TestCa::new("example.org");
    let result = handshake(
        client_config(source(&ca, CLIENT, &[&ca]), Authorizer::any()).unwrap(),
        server_config(
            source(&ca, SERVER, &[&ca]),
            Authorizer::exact(id("spiffe://example.org/other")),
        )
        .unwrap(),
    );
    match result {
        Err(("server", rustls::Error::InvalidCertificate(e))) => {
            assert!(format!("{e:?}").contains("not authorized"), "{e:?}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("handshake succeeded"),
    }
}

#[test]
fn peers_from_an_untrusted_ca_are_refused() {
    let ca = TestCa::new("example.org");
    let rogue = TestCa::new("example.org");
    // The server's SVID comes from a CA the client does not trust.
    let result = handshake(
        client_config(source(&ca, CLIENT, &[&ca]), Authorizer::any()).unwrap(),
        server_config(source(&rogue, SERVER, &[&ca]), Authorizer::any()).unwrap(),
    );
    assert!(matches!(
        result,
        Err(("client", rustls::Error::InvalidCertificate(_)))
    ));
    // The client's SVID comes from a CA the server does not trust.
    let result = handshake(
        client_config(source(&rogue, CLIENT, &[&ca]), Authorizer::any()).unwrap(),
        server_config(source(&ca, SERVER, &[&ca]), Authorizer::any()).unwrap(),
    );
    assert!(matches!(
        result,
        Err(("server", rustls::Error::InvalidCertificate(_)))
    ));
    // A peer of a trust domain without a bundle is refused.
    let other = TestCa::new("other.org");
    let result = handshake(
        client_config(source(&ca, CLIENT, &[&ca]), Authorizer::any()).unwrap(),
        server_config(
            source(&other, "spiffe://other.org/server", &[&ca]),
            Authorizer::any(),
        )
        .unwrap(),
    );
    match result {
        Err(("client", rustls::Error::InvalidCertificate(e))) => {
            assert!(format!("{e:?}").contains("no X.509 bundle"), "{e:?}");
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn federated_trust_domains_verify_with_their_own_bundle() {
    let ca = TestCa::new("example.org");
    let other = TestCa::new("other.org");
    let (client, _) = handshake(
        client_config(
            source(&ca, CLIENT, &[&ca, &other]),
            Authorizer::member_of(other.trust_domain.clone()),
        )
        .unwrap(),
        server_config(
            source(&other, "spiffe://other.org/server", &[&other, &ca]),
            Authorizer::member_of(ca.trust_domain.clone()),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        peer_spiffe_id(&client),
        Some(id("spiffe://other.org/server"))
    );
}

#[test]
fn rotation_is_picked_up_without_rebuilding_configs() {
    let ca = TestCa::new("example.org");
    let server_source = source(&ca, SERVER, &[&ca]);
    let client_source = source(&ca, CLIENT, &[&ca]);
    let server = server_config(Arc::clone(&server_source), Authorizer::any()).unwrap();
    let client = client_config(Arc::clone(&client_source), Authorizer::any()).unwrap();
    let (c1, _) = handshake(client.clone(), server.clone()).unwrap();
    let first = c1.peer_certificates().unwrap()[0].clone();

    // Rotate the server's SVID, and move both sides to a new CA.
    let next = TestCa::new("example.org");
    let bundles: X509BundleSet = [next.bundle()].into_iter().collect();
    server_source.set_context(X509Context::new(vec![next.svid(SERVER)], bundles.clone()).unwrap());
    // The client still trusts only the old CA: refused.
    assert!(handshake(client.clone(), server.clone()).is_err());
    client_source.set_context(X509Context::new(vec![next.svid(CLIENT)], bundles).unwrap());
    let (c2, s2) = handshake(client, server).unwrap();
    assert_ne!(c2.peer_certificates().unwrap()[0], first);
    assert_eq!(peer_spiffe_id(&s2), Some(id(CLIENT)));
}
