//! SSRF at connection time, with a real [`Sender`]: whatever a webhook URL says and whatever
//! its name resolves to now, production mode never opens a connection to a non-public address.
//! Each case listens on loopback and asserts that nothing arrived; the last ones check what does
//! arrive where a connection is allowed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_core::dispatcher::{ClaimedDelivery, NextState, Sender, SenderConfig, WebhookSettings};
use agora_core::format::Format;
use agora_core::retry::RetryPolicy;
use agora_core::signing::WebhookSecret;
use agora_core::target::{StaticLookup, TargetPolicy};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn sender(allow_private: bool, lookup: StaticLookup) -> Sender {
    Sender::with_lookup(
        SenderConfig {
            forum_name: "test".into(),
            targets: TargetPolicy { allow_private },
            retry: RetryPolicy::default(),
            max_in_flight: 64,
        },
        Arc::new(lookup),
    )
    .expect("client builds")
}

fn delivery(url: String) -> ClaimedDelivery {
    ClaimedDelivery {
        id: "msg_1".into(),
        event_id: "evt_1".into(),
        event_type: "thread.created".into(),
        webhook_id: "wh_1".into(),
        webhook: Arc::new(WebhookSettings {
            url,
            secrets: vec![WebhookSecret::generate()],
            headers: Vec::new(),
            timeout: Duration::from_secs(2),
            format: Format::default(),
        }),
        body: "{}".into(),
        attempt: 1,
        retries_done: 0,
        retry_count: 3,
    }
}

/// A loopback listener that counts the connections it accepts.
async fn listener() -> (u16, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counted = tokio::spawn(async move {
        let mut n = 0;
        while let Ok(Ok((mut socket, _))) =
            tokio::time::timeout(Duration::from_millis(700), listener.accept()).await
        {
            n += 1;
            // Answer like a minimal HTTP server, so a development-mode attempt succeeds.
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
            use tokio::io::AsyncWriteExt;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
        n
    });
    (port, counted)
}

fn loopback() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_never_connected_to_in_production() {
    let (port, counted) = listener().await;
    let lookup = StaticLookup::new().with("hooks.example.com", &[loopback()]);
    let record = sender(false, lookup)
        .attempt(&delivery(format!("https://hooks.example.com:{port}/hook")))
        .await;
    assert_eq!(record.response_status, None);
    let error = record.error.expect("the attempt failed");
    assert!(error.contains("private"), "{error}");
    assert!(matches!(record.next, NextState::RetryAt(_)));
    assert_eq!(counted.await.unwrap(), 0, "something reached the socket");
}

#[tokio::test]
async fn a_public_answer_followed_by_loopback_is_never_connected_to() {
    let (port, counted) = listener().await;
    let lookup = StaticLookup::new().with(
        "rebind.example.com",
        &["93.184.216.34".parse().unwrap(), loopback()],
    );
    let record = sender(false, lookup)
        .attempt(&delivery(format!("https://rebind.example.com:{port}/hook")))
        .await;
    assert!(record.error.expect("failed").contains("private"));
    assert_eq!(counted.await.unwrap(), 0, "something reached the socket");
}

#[tokio::test]
async fn an_address_literal_is_checked_again_at_connection_time() {
    // Stored while the policy allowed it (or written to the database by hand): the client
    // would connect to a literal without asking the resolver, so the sender checks the URL.
    let (port, counted) = listener().await;
    let s = sender(false, StaticLookup::new());
    for url in [
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
        format!("https://2130706433:{port}/hook"),
    ] {
        let record = s.attempt(&delivery(url.clone())).await;
        assert!(record.error.is_some(), "{url} was attempted");
        assert_eq!(record.response_status, None, "{url}");
    }
    assert_eq!(counted.await.unwrap(), 0, "something reached the socket");
}

#[tokio::test]
async fn development_mode_connects_through_the_same_lookup() {
    // The control for the tests above: the injected lookup is the one the client uses, and
    // a connection would have been seen.
    let (port, counted) = listener().await;
    let lookup = StaticLookup::new().with("hooks.example.com", &[loopback()]);
    let record = sender(true, lookup)
        .attempt(&delivery(format!("http://hooks.example.com:{port}/hook")))
        .await;
    assert_eq!(record.response_status, Some(200), "{:?}", record.error);
    assert_eq!(record.next, NextState::Succeeded);
    assert_eq!(counted.await.unwrap(), 1);
}

#[tokio::test]
async fn an_https_target_is_spoken_to_in_tls_naming_its_host() {
    // The client is built by hand from hyper's parts, so this checks that `https` really goes
    // through TLS on the guarded connection, and that the certificate is asked for by name.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf))
            .await
            .expect("the client spoke")
            .unwrap();
        buf.truncate(n);
        buf
    });
    let lookup = StaticLookup::new().with("hooks.example.com", &[loopback()]);
    let record = sender(true, lookup)
        .attempt(&delivery(format!("https://hooks.example.com:{port}/hook")))
        .await;
    let hello = first_bytes.await.unwrap();
    assert_eq!(hello.first(), Some(&0x16), "not a TLS handshake record");
    assert!(
        hello.windows(17).any(|w| w == b"hooks.example.com"),
        "the server name is not in the hello"
    );
    assert_eq!(record.response_status, None);
    assert!(
        record.error.is_some(),
        "a silent server cannot have answered"
    );
}
