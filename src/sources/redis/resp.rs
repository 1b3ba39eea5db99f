//! A read-only Redis client: RESP2 over TCP (or TLS), pipelined, bounded.
//!
//! medmig reads Redis and never writes it. This module owns the wire: sending commands (only
//! those in [`READ_COMMANDS`], checked before anything is written), and reading replies with
//! every length from the server capped ([`ReplyLimits`]) and every wait under a deadline. A
//! pipeline writes all its commands in one go and reads the replies in order, so that the
//! number of round trips does not grow with the number of commands.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};

/// The commands medmig may send: reads, and the two a session needs to start (AUTH, SELECT).
/// Anything else is refused before a byte is written.
pub const READ_COMMANDS: [&str; 14] = [
    "AUTH",
    "SELECT",
    "SCAN",
    "TYPE",
    "GET",
    "MGET",
    "PTTL",
    "LRANGE",
    "LLEN",
    "ZRANGE",
    "ZREVRANGE",
    "ZCARD",
    "HGETALL",
    "HGET",
];

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text (a bulk or status string), lossily.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Bulk(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Reply::Status(text) => Some(text.clone()),
            _ => None,
        }
    }

    /// The elements of an array reply (empty for anything else).
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(items) => items,
            _ => &[],
        }
    }
}

/// How much of a reply medmig reads: caps on what the server says it will send.
#[derive(Debug, Clone, Copy)]
pub struct ReplyLimits {
    /// One bulk string (a job's data, a registry entry).
    pub bulk_bytes: usize,
    /// The elements of one array, at any depth.
    pub array_items: usize,
    /// Every byte of one pipeline's replies together.
    pub total_bytes: usize,
}

impl Default for ReplyLimits {
    fn default() -> ReplyLimits {
        ReplyLimits {
            bulk_bytes: 16 << 20,
            array_items: 1_000_000,
            total_bytes: 512 << 20,
        }
    }
}

/// A connection: the stream, the limits, and the deadline of each reply.
pub struct Connection<S> {
    stream: BufReader<S>,
    limits: ReplyLimits,
    /// How long medmig waits for each reply before it gives up.
    pub reply_timeout: Duration,
    /// Round trips made (one per pipeline).
    pub round_trips: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, limits: ReplyLimits, reply_timeout: Duration) -> Connection<S> {
        Connection {
            stream: BufReader::new(stream),
            limits,
            reply_timeout,
            round_trips: 0,
        }
    }

    /// Sends `commands` in one write and reads their replies, in order. A command outside
    /// [`READ_COMMANDS`] is refused before anything is sent.
    pub async fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>> {
        let mut wire = Vec::new();
        for command in commands {
            encode(command, &mut wire)?;
        }
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        self.round_trips += 1;
        let write = async {
            self.stream.get_mut().write_all(&wire).await?;
            self.stream.get_mut().flush().await
        };
        tokio::time::timeout(self.reply_timeout, write)
            .await
            .map_err(|_| {
                anyhow!(
                    "Redis did not take the commands within {:?}",
                    self.reply_timeout
                )
            })?
            .context("cannot write to Redis")?;
        let mut budget = self.limits.total_bytes;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            let limits = self.limits;
            let reply = tokio::time::timeout(
                self.reply_timeout,
                read_reply(&mut self.stream, &limits, &mut budget, 0),
            )
            .await
            .map_err(|_| anyhow!("Redis did not answer within {:?}", self.reply_timeout))??;
            replies.push(reply);
        }
        Ok(replies)
    }
}

/// The first `count` replies in `bytes`, read as [`Connection::pipeline`] reads them (for the
/// fuzz target and tests: the same reader, no socket).
pub fn decode(bytes: &[u8], count: usize, limits: ReplyLimits) -> Result<Vec<Reply>> {
    use futures_util::FutureExt;
    let mut reader = BufReader::new(bytes);
    let mut budget = limits.total_bytes;
    let mut replies = Vec::new();
    for _ in 0..count {
        let reply = read_reply(&mut reader, &limits, &mut budget, 0)
            .now_or_never()
            .ok_or_else(|| anyhow!("a read from memory waited"))??;
        replies.push(reply);
    }
    Ok(replies)
}

/// A command as its words: `cmd(&["LRANGE", key, "0", "-1"])`.
pub fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// RESP's encoding of one command, refused unless it is a read.
fn encode(command: &[Vec<u8>], out: &mut Vec<u8>) -> Result<()> {
    let name = command
        .first()
        .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
        .unwrap_or_default();
    if !READ_COMMANDS.contains(&name.as_str()) {
        bail!("medmig sends Redis read commands only, not {name}");
    }
    out.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
    for word in command {
        out.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
        out.extend_from_slice(word);
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// The deepest nesting of arrays medmig reads (BullMQ's replies nest two deep).
const MAX_DEPTH: usize = 8;

/// The longest line (a status, an error, a length) medmig reads.
const MAX_LINE: usize = 64 << 10;

/// Reads one reply, every length checked against `limits` and `budget` (bytes left).
fn read_reply<'a, R: AsyncBufRead + Unpin>(
    reader: &'a mut R,
    limits: &'a ReplyLimits,
    budget: &'a mut usize,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply>> + 'a>> {
    Box::pin(async move {
        let line = read_line(reader, budget).await?;
        // The first character says the kind; a line starting with anything else (a multi-byte
        // character included) is not RESP.
        let kind_len = line.chars().next().map_or(1, char::len_utf8);
        let (kind, rest) = line.split_at(kind_len);
        let number = || {
            rest.parse::<i64>().map_err(|_| {
                anyhow!(
                    "Redis sent a malformed length: {}",
                    crate::text::shorten(rest, 40)
                )
            })
        };
        match kind {
            "+" => Ok(Reply::Status(rest.to_string())),
            "-" => Ok(Reply::Error(rest.to_string())),
            ":" => Ok(Reply::Integer(number()?)),
            "$" => {
                let n = number()?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > limits.bulk_bytes {
                    bail!(
                        "Redis announced a value of {n} bytes, more than medmig reads ({})",
                        crate::limits::size(limits.bulk_bytes as u64)
                    );
                }
                spend(budget, n + 2)?;
                let mut bytes = vec![0; n + 2];
                reader
                    .read_exact(&mut bytes)
                    .await
                    .context("Redis closed the connection")?;
                if !bytes.ends_with(b"\r\n") {
                    bail!("Redis sent a value without its line end");
                }
                bytes.truncate(n);
                Ok(Reply::Bulk(bytes))
            }
            "*" => {
                let n = number()?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > limits.array_items {
                    bail!(
                        "Redis announced {n} elements, more than medmig reads ({})",
                        limits.array_items
                    );
                }
                if depth >= MAX_DEPTH {
                    bail!("Redis sent arrays nested deeper than {MAX_DEPTH}");
                }
                // Each element takes at least 3 bytes: the budget bounds the allocation too.
                spend(budget, n.saturating_mul(3))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_reply(reader, limits, budget, depth + 1).await?);
                }
                Ok(Reply::Array(items))
            }
            other => bail!(
                "Redis sent a reply of a kind RESP2 does not have ({}): is this Redis?",
                crate::text::escape_controls(other)
            ),
        }
    })
}

fn spend(budget: &mut usize, n: usize) -> Result<()> {
    *budget = budget
        .checked_sub(n)
        .ok_or_else(|| anyhow!("Redis's replies exceed what medmig reads in one go"))?;
    Ok(())
}

/// One `\r\n`-terminated line, without it; at most [`MAX_LINE`] bytes.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, budget: &mut usize) -> Result<String> {
    let mut line = Vec::new();
    let mut limited = reader.take(MAX_LINE as u64 + 2);
    limited
        .read_until(b'\n', &mut line)
        .await
        .context("cannot read from Redis")?;
    if line.is_empty() {
        bail!("Redis closed the connection");
    }
    if !line.ends_with(b"\r\n") || line.len() < 3 {
        bail!("Redis sent a line that is too long or not terminated");
    }
    spend(budget, line.len())?;
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| anyhow!("Redis sent a line that is not text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply> {
        let mut reader = BufReader::new(bytes);
        let mut budget = 1 << 20;
        read_reply(&mut reader, &ReplyLimits::default(), &mut budget, 0).await
    }

    #[tokio::test]
    async fn replies_of_every_kind() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Status("OK".into()));
        assert_eq!(parse(b":-2\r\n").await.unwrap(), Reply::Integer(-2));
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Nil);
        assert_eq!(
            parse(b"$3\r\na\r\n\r\n").await.unwrap(),
            Reply::Bulk(b"a\r\n".to_vec())
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\nx\r\n*1\r\n:1\r\n").await.unwrap(),
            Reply::Array(vec![
                Reply::Bulk(b"x".to_vec()),
                Reply::Array(vec![Reply::Integer(1)])
            ])
        );
        assert_eq!(
            parse(b"-NOPERM this user has no permissions\r\n")
                .await
                .unwrap(),
            Reply::Error("NOPERM this user has no permissions".into())
        );
    }

    #[tokio::test]
    async fn hostile_lengths_are_refused_before_any_allocation() {
        for bytes in [
            &b"$99999999999\r\n"[..],
            b"*99999999999\r\n",
            b"*500000\r\n",
            b"$5\r\nab",
            b"?what\r\n",
            // Found by the fuzz target: a first character of two bytes.
            b"\xc9\x97#\x00:\xdc\x8e0\r\n",
            b":12x\r\n",
        ] {
            assert!(parse(bytes).await.is_err(), "{bytes:?}");
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(parse(deep.as_bytes()).await.is_err());
    }

    #[test]
    fn only_read_commands_are_encoded() {
        let mut out = Vec::new();
        encode(&cmd(&["lrange", "k", "0", "-1"]), &mut out).unwrap();
        assert_eq!(
            out,
            b"*4\r\n$6\r\nlrange\r\n$1\r\nk\r\n$1\r\n0\r\n$2\r\n-1\r\n"
        );
        for write in [
            "SET", "DEL", "FLUSHALL", "EVAL", "CONFIG", "MULTI", "ACL", "",
        ] {
            assert!(
                encode(&cmd(&[write, "k"]), &mut Vec::new()).is_err(),
                "{write}"
            );
        }
    }
}
