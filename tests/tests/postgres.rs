//! The PostgreSQL server the shared-store tests run against (issue 13) is a real one: it takes
//! connections on loopback, keeps committed rows across a crash and a restart, and a client of
//! a stopped server gets an error at once, not a hang.

use std::time::Duration;

use brine_tests::postgres::Postgres;
use brine_tests::within;

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_server_is_real_and_keeps_commits_across_a_crash() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let client = within("a connection", connect(&server.url()))
        .await
        .expect("the server takes connections");
    let version: String = within("a query", client.query_one("SHOW server_version", &[]))
        .await
        .expect("a version")
        .get(0);
    assert!(
        version
            .split('.')
            .next()
            .and_then(|v| v.parse::<u32>().ok())
            >= Some(13),
        "{version}"
    );
    within(
        "a commit",
        client.batch_execute(
            "CREATE TABLE returns (jid text PRIMARY KEY); INSERT INTO returns VALUES ('j1')",
        ),
    )
    .await
    .expect("a table and a row");

    server.kill();
    let refused = tokio::time::timeout(Duration::from_secs(10), connect(&server.url())).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a stopped server refuses at once"
    );

    server.start_again();
    let client = within("a connection after the restart", connect(&server.url()))
        .await
        .expect("the server is back");
    let rows = within("a query", client.query("SELECT jid FROM returns", &[]))
        .await
        .expect("the table survived");
    let jids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(jids, ["j1"]);
}
