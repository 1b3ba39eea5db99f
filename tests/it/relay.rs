//! A TCP relay between medmig and the test server that reads the PostgreSQL protocol as it
//! passes: it keeps what medmig sends, and can hold medmig's next request or stop passing the
//! server's answers after a given number of them, as a stuck backend, a wedged proxy or a lock
//! taken at the wrong moment would. Plain TCP (`sslmode=disable`) so that it can read.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::harness::TestDb;

/// What the relay does besides passing bytes. Answers are counted by the server's
/// ReadyForQuery messages: the first ends the startup, then one per statement.
#[derive(Clone, Copy, Default)]
pub struct Plan {
    /// Hold what medmig sends after this many answers until [`Relay::release`].
    pub hold_after: Option<usize>,
    /// Pass nothing more from the server after this many answers.
    pub stall_after: Option<usize>,
}

#[derive(Default)]
struct State {
    answers: usize,
    holding: bool,
    held: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// A running relay; see the module documentation.
pub struct Relay {
    /// The test database's URL through the relay.
    pub url: String,
    shared: Shared,
    medmig_side: JoinHandle<(Vec<u8>, Result<(), ErrorKind>)>,
}

impl Relay {
    /// Listens on a free port; relays one connection to `db`'s server.
    pub fn start(db: &TestDb, plan: Plan) -> Relay {
        let config: tokio_postgres::Config = db.url().parse().unwrap();
        let server = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => {
                format!("{host}:{}", config.get_ports()[0])
            }
            other => panic!("the test server is not on TCP: {other:?}"),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = listener.local_addr().unwrap();
        let shared: Shared = Arc::default();
        let state = shared.clone();
        let medmig_side = std::thread::spawn(move || {
            let (from_medmig, _) = listener.accept().unwrap();
            let to_server = TcpStream::connect(server).unwrap();
            let (from_server, to_medmig) = (
                to_server.try_clone().unwrap(),
                from_medmig.try_clone().unwrap(),
            );
            let answers = state.clone();
            std::thread::spawn(move || pass_answers(from_server, to_medmig, &answers, plan));
            pass_requests(from_medmig, to_server, &state)
        });
        let url = db.url();
        let at = url.find('@').unwrap() + 1;
        let authority_end = at + url[at..].find('/').unwrap();
        Relay {
            url: format!(
                "{}{relay}{}?sslmode=disable",
                &url[..at],
                &url[authority_end..]
            ),
            shared,
            medmig_side,
        }
    }

    /// Waits until medmig's next request is held (see [`Plan::hold_after`]).
    pub fn wait_until_held(&self) {
        let (lock, changed) = &*self.shared;
        let state = changed
            .wait_while(lock.lock().unwrap(), |s| !s.held)
            .unwrap();
        drop(state);
    }

    /// Lets medmig's requests through again.
    pub fn release(&self) {
        let (lock, changed) = &*self.shared;
        lock.lock().unwrap().holding = false;
        changed.notify_all();
    }

    /// Once medmig has closed its side: every byte it sent, and how its side ended.
    pub fn finish(self) -> (Vec<u8>, Result<(), ErrorKind>) {
        self.medmig_side.join().unwrap()
    }
}

/// medmig → server, keeping the bytes; waits while a hold is on.
fn pass_requests(
    mut from_medmig: TcpStream,
    mut to_server: TcpStream,
    shared: &Shared,
) -> (Vec<u8>, Result<(), ErrorKind>) {
    let (mut sent, mut buffer) = (Vec::new(), [0u8; 16384]);
    let ended = loop {
        match from_medmig.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                let (lock, changed) = &**shared;
                let mut state = lock.lock().unwrap();
                if state.holding {
                    state.held = true;
                    changed.notify_all();
                    state = changed.wait_while(state, |s| s.holding).unwrap();
                }
                drop(state);
                sent.extend_from_slice(&buffer[..n]);
                if to_server.write_all(&buffer[..n]).is_err() {
                    break Ok(());
                }
            }
            Err(err) => break Err(err.kind()),
        }
    };
    let _ = to_server.shutdown(Shutdown::Write);
    (sent, ended)
}

/// server → medmig, message by message, counting answers (ReadyForQuery); starts a hold, or
/// stops passing, as planned.
fn pass_answers(mut from_server: TcpStream, mut to_medmig: TcpStream, shared: &Shared, plan: Plan) {
    let (mut pending, mut buffer) = (Vec::new(), [0u8; 16384]);
    let mut stalled = false;
    loop {
        let n = match from_server.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        while let Some(length) = message_length(&pending) {
            let message: Vec<u8> = pending.drain(..length).collect();
            if stalled {
                continue;
            }
            if message[0] == b'Z' {
                let (lock, _) = &**shared;
                let mut state = lock.lock().unwrap();
                state.answers += 1;
                // Before medmig sees this answer, so that what it sends next is held.
                if plan.hold_after == Some(state.answers) {
                    state.holding = true;
                }
                stalled = plan.stall_after == Some(state.answers);
            }
            if to_medmig.write_all(&message).is_err() {
                return;
            }
        }
    }
    // A stalled relay passes on nothing, not even the server's goodbye.
    if !stalled {
        let _ = to_medmig.shutdown(Shutdown::Write);
    }
}

/// The length of the typed message at the start of `bytes`, once all of it is there.
fn message_length(bytes: &[u8]) -> Option<usize> {
    let length = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?) as usize + 1;
    (bytes.len() >= length).then_some(length)
}

/// The typed messages medmig sent (after its startup message), as (type, body).
pub fn requests(sent: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let startup = u32::from_be_bytes(sent[..4].try_into().unwrap()) as usize;
    let mut rest = &sent[startup..];
    let mut messages = Vec::new();
    while let Some(length) = message_length(rest) {
        messages.push((rest[0], rest[5..length].to_vec()));
        rest = &rest[length..];
    }
    assert!(rest.is_empty(), "a request cut short: {rest:?}");
    messages
}
