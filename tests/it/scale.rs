//! Scale: the statements medmig sends do not grow with the schema or the job history, and
//! the job queries use their indexes at Medplum's sizes. Databases come from the generator
//! of `fixtures/sql/generate.sql`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{connect, medmig, runtime, unique_name, TestDb};

/// A TCP proxy in front of the test server that counts the statements clients execute:
/// protocol messages `Q` (simple query) and `E` (execute of a prepared statement).
struct CountingProxy {
    port: u16,
    statements: Arc<AtomicUsize>,
}

impl CountingProxy {
    fn start() -> CountingProxy {
        let (host, port) = crate::harness::server_host_port();
        let upstream = format!("{host}:{port}");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let statements = Arc::new(AtomicUsize::new(0));
        let counter = statements.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server = TcpStream::connect(&upstream).unwrap();
                let (mut client_read, mut server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut server_read, mut client_write) = (server, client);
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = forward_counting(&mut client_read, &mut server_write, &counter);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                });
            }
        });
        CountingProxy { port, statements }
    }

    fn url(&self, database: &str) -> String {
        let user = crate::harness::server_user();
        format!(
            "postgres://{user}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    fn take(&self) -> usize {
        self.statements.swap(0, Ordering::SeqCst)
    }
}

/// Forwards client messages, counting executed statements. The first message (startup)
/// has no type byte.
fn forward_counting(
    from: &mut TcpStream,
    to: &mut TcpStream,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    let mut length = [0u8; 4];
    from.read_exact(&mut length)?;
    let mut body = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
    from.read_exact(&mut body)?;
    to.write_all(&length)?;
    to.write_all(&body)?;
    loop {
        let mut kind = [0u8; 1];
        from.read_exact(&mut kind)?;
        from.read_exact(&mut length)?;
        let mut body = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
        from.read_exact(&mut body)?;
        if kind[0] == b'Q' || kind[0] == b'E' {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        to.write_all(&kind)?;
        to.write_all(&length)?;
        to.write_all(&body)?;
    }
}

fn generated(types: u32, jobs: u32) -> TestDb {
    TestDb::build(
        &["schema", "generate"],
        &format!("SELECT fixture.generate({types}, {jobs}); ANALYZE"),
    )
}

#[test]
fn the_statements_sent_do_not_depend_on_the_size_of_the_database() {
    let proxy = CountingProxy::start();
    let small = generated(3, 60);
    let large = generated(40, 3000);
    let mut counts = Vec::new();
    for db in [&small, &large] {
        for command in ["snapshot", "bundle"] {
            let out = std::env::temp_dir().join(format!("{}.out", unique_name("medmig_count")));
            let url = proxy.url(&db.name);
            let run = medmig(&[
                command,
                "--database-url",
                &url,
                "--out",
                out.to_str().unwrap(),
            ]);
            assert_eq!(run.code, 0, "{run:?}");
            std::fs::remove_file(&out).unwrap();
            counts.push((command, proxy.take()));
        }
        let run = medmig(&["status", "--database-url", &proxy.url(&db.name)]);
        assert_eq!(run.code, 0, "{run:?}");
        counts.push(("status", proxy.take()));
    }
    let (first, second) = counts.split_at(3);
    assert_eq!(first, second, "statements at 3 and at 40 resource types");
    assert!(first.iter().all(|(_, n)| *n >= 10), "{first:?}");
}

#[test]
fn job_queries_use_their_indexes_at_20000_jobs() {
    let db = generated(2, 20000);
    let rt = runtime();
    rt.block_on(async {
        let client = connect(&db.url()).await;
        let count: i64 = client
            .query_one("SELECT count(*) FROM \"AsyncJob_History\"", &[])
            .await
            .unwrap()
            .get(0);
        assert!(count >= 60000, "{count}");
        for (file, index) in [
            ("data_migration_jobs.sql", "AsyncJob_type_idx"),
            ("data_migration_job_history.sql", "AsyncJob_History_id_idx"),
        ] {
            let sql = std::fs::read_to_string(format!("queries/{file}")).unwrap();
            client
                .batch_execute(&format!("DEALLOCATE ALL; PREPARE q(text) AS {sql}"))
                .await
                .unwrap();
            let plan: Vec<String> = client
                .query("EXPLAIN EXECUTE q('data-migration')", &[])
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            let plan = plan.join("\n");
            assert!(plan.contains(index), "{file} does not use {index}:\n{plan}");
            assert!(
                !plan.contains("Seq Scan on \"AsyncJob"),
                "{file} scans a whole table:\n{plan}"
            );
        }
    });
}

#[test]
fn every_definition_of_a_generated_database_is_postgresqls() {
    // Medplum's own shapes at a size where every kind of table and index recurs.
    let db = generated(12, 50);
    crate::schema::assert_definitions_are_postgresqls(&db, 300, 30);
}
