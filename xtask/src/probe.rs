//! Readiness probes that speak each server's own protocol over TCP, so that `status` and the
//! start-up waits need no client tools and an unrelated process on the port is not mistaken for
//! the service.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::service::SENTINEL_MASTER_NAME;

fn connect(port: u16) -> io::Result<TcpStream> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

/// Something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    connect(port).is_ok()
}

// ------------------------------------------------------------------------------------ Redis

/// A RESP2 reply.
#[derive(Debug, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// Sends one command and reads one reply.
pub fn redis_command(port: u16, args: &[&str]) -> io::Result<Resp> {
    let mut stream = connect(port)?;
    stream.write_all(&encode_command(args))?;
    read_resp(&mut BufReader::new(stream))
}

fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads one RESP2 value.
pub fn read_resp(reader: &mut impl BufRead) -> io::Result<Resp> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(invalid("connection closed before a reply"));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| invalid("empty reply line"))?;
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| invalid(format!("bad length `{rest}`")))
    };
    match kind {
        "+" => Ok(Resp::Simple(rest.to_string())),
        "-" => Ok(Resp::Error(rest.to_string())),
        ":" => Ok(Resp::Integer(number()?)),
        "$" => {
            let Ok(length) = usize::try_from(number()?) else {
                return Ok(Resp::Bulk(None));
            };
            let mut data = vec![0; length + 2];
            reader.read_exact(&mut data)?;
            data.truncate(length);
            Ok(Resp::Bulk(Some(data)))
        }
        "*" => {
            let Ok(count) = usize::try_from(number()?) else {
                return Ok(Resp::Array(None));
            };
            let items = (0..count)
                .map(|_| read_resp(reader))
                .collect::<io::Result<Vec<_>>>()?;
            Ok(Resp::Array(Some(items)))
        }
        other => Err(invalid(format!("unknown RESP type `{other}`"))),
    }
}

/// `PING` answers `PONG`.
pub fn redis_ping(port: u16) -> bool {
    matches!(redis_command(port, &["PING"]), Ok(Resp::Simple(s)) if s == "PONG")
}

/// The value of one `field:value` line of a Redis INFO-style text.
pub fn info_field(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == field).then(|| value.trim().to_string())
    })
}

/// `CLUSTER INFO` as text, if the node is in cluster mode.
pub fn redis_cluster_info(port: u16) -> Option<String> {
    redis_command(port, &["CLUSTER", "INFO"]).ok()?.text()
}

/// The node reports `cluster_state:ok` with every slot assigned.
pub fn redis_cluster_ok(port: u16) -> bool {
    redis_cluster_info(port).is_some_and(|info| {
        info_field(&info, "cluster_state").as_deref() == Some("ok")
            && info_field(&info, "cluster_slots_assigned").as_deref() == Some("16384")
    })
}

/// `SENTINEL get-master-addr-by-name NAME`.
pub fn sentinel_master_address(port: u16, name: &str) -> Option<(String, u16)> {
    let reply = redis_command(port, &["SENTINEL", "get-master-addr-by-name", name]);
    let Ok(Resp::Array(Some(items))) = reply else {
        return None;
    };
    match items.as_slice() {
        [host, port] => Some((host.text()?, port.text()?.parse().ok()?)),
        _ => None,
    }
}

/// One field of `SENTINEL master NAME`: `flags` (`master` when the sentinel reaches it),
/// `num-slaves`, `num-other-sentinels`, ...
pub fn sentinel_master_field(port: u16, name: &str, field: &str) -> Option<String> {
    let reply = redis_command(port, &["SENTINEL", "master", name]);
    let Ok(Resp::Array(Some(items))) = reply else {
        return None;
    };
    items
        .chunks(2)
        .find(|pair| pair[0].text().as_deref() == Some(field))
        .and_then(|pair| pair.get(1)?.text())
}

/// The sentinel on `port` knows the master `name` at 127.0.0.1:`master_port` and currently
/// reaches it.
pub fn sentinel_watches(port: u16, name: &str, master_port: u16) -> bool {
    let expected = (crate::service::HOST.to_string(), master_port);
    sentinel_master_address(port, name).as_ref() == Some(&expected)
        && sentinel_master_field(port, name, "flags").as_deref() == Some("master")
}

/// The shared sentinel knows its master at 127.0.0.1:6380 and currently reaches it.
pub fn sentinel_ready(port: u16) -> bool {
    sentinel_watches(
        port,
        SENTINEL_MASTER_NAME,
        crate::service::SENTINEL_MASTER_PORT,
    )
}

// -------------------------------------------------------------------------------- Memcached

/// The `version` reply, e.g. `VERSION 1.6.18`. Reads one line only: memcached keeps the
/// connection open.
pub fn memcached_version(port: u16) -> Option<String> {
    let mut stream = connect(port).ok()?;
    stream.write_all(b"version\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("VERSION ")
        .then(|| line.trim_end().to_string())
}

// ------------------------------------------------------------------------------- PostgreSQL

/// Sends a startup message and accepts any authentication request or error other than
/// 57P03 (`the database system is starting up`). Closing during authentication is not logged
/// by the server.
pub fn postgres_accepting(port: u16) -> bool {
    let Ok(mut stream) = connect(port) else {
        return false;
    };
    let mut body = 196608_i32.to_be_bytes().to_vec(); // protocol 3.0
    for part in [
        "user",
        "sessions",
        "database",
        "sessions",
        "application_name",
        "xtask-probe",
    ] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = (body.len() as i32 + 4).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    if stream.write_all(&message).is_err() {
        return false;
    }
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    match header[0] {
        b'R' => true,
        b'E' => {
            let length = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let mut fields = vec![0u8; usize::try_from(length - 4).unwrap_or(0).min(8192)];
            if stream.read_exact(&mut fields).is_err() {
                return false;
            }
            // Fields are `<type byte><text>\0`; `C` holds the SQLSTATE.
            !fields.split(|b| *b == 0).any(|field| field == b"C57P03")
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------- MariaDB

/// The server sends its handshake (protocol 10) or an error packet as soon as a client
/// connects. Connections from loopback never count towards `max_connect_errors`.
pub fn mysql_greeting(port: u16) -> bool {
    let Ok(mut stream) = connect(port) else {
        return false;
    };
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    header[4] == 10
}

// --------------------------------------------------------------------------------- DynamoDB

/// `ListTables` with dummy credentials answers 200 (moto and DynamoDB Local do not check
/// signatures).
pub fn dynamodb_list_tables(port: u16) -> bool {
    let Ok(mut stream) = connect(port) else {
        return false;
    };
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.ListTables\r\n\
         X-Amz-Date: 20200101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=dummy/20200101/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host, Signature=0\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = String::new();
    if BufReader::new(stream).read_line(&mut status).is_err() {
        return false;
    }
    status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200")
}

// ---------------------------------------------------------------------------------- MongoDB

const OP_MSG: i32 = 2013;

/// `{ping: 1, $db: "admin"}` as an OP_MSG answers `{ok: 1}`.
pub fn mongodb_ping(port: u16) -> bool {
    let Ok(mut stream) = connect(port) else {
        return false;
    };
    if stream.write_all(&mongodb_ping_message()).is_err() {
        return false;
    }
    let mut header = [0u8; 16];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let word =
        |i: usize| i32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (length, op_code) = (word(0), word(12));
    let Ok(body_length) = usize::try_from(length - 16) else {
        return false;
    };
    if op_code != OP_MSG || !(5..=16 << 20).contains(&body_length) {
        return false;
    }
    let mut body = vec![0u8; body_length];
    if stream.read_exact(&mut body).is_err() || body[4] != 0 {
        return false;
    }
    bson_ok(&body[5..])
}

fn mongodb_ping_message() -> Vec<u8> {
    let mut elements = Vec::new();
    elements.push(0x10); // int32
    elements.extend_from_slice(b"ping\0");
    elements.extend_from_slice(&1_i32.to_le_bytes());
    elements.push(0x02); // string
    elements.extend_from_slice(b"$db\0");
    elements.extend_from_slice(&6_i32.to_le_bytes());
    elements.extend_from_slice(b"admin\0");
    elements.push(0);
    let mut document = (elements.len() as i32 + 4).to_le_bytes().to_vec();
    document.extend_from_slice(&elements);

    let length = 16 + 4 + 1 + document.len();
    let mut message = Vec::with_capacity(length);
    for word in [length as i32, 1, 0, OP_MSG] {
        message.extend_from_slice(&word.to_le_bytes());
    }
    message.extend_from_slice(&0_u32.to_le_bytes()); // flag bits
    message.push(0); // section kind 0: body
    message.extend_from_slice(&document);
    message
}

/// Whether a BSON document has `ok` equal to 1 (double, int32, int64 or true).
pub fn bson_ok(document: &[u8]) -> bool {
    let mut at = 4;
    while at < document.len() && document[at] != 0 {
        let kind = document[at];
        let Some(name_length) = document[at + 1..].iter().position(|b| *b == 0) else {
            return false;
        };
        let name = &document[at + 1..at + 1 + name_length];
        let value = &document[at + 2 + name_length..];
        let fixed = |n: usize| value.get(..n);
        let length_prefixed = |extra: usize| {
            let bytes = value.get(..4)?;
            let n = i32::from_le_bytes(bytes.try_into().ok()?);
            usize::try_from(n).ok().map(|n| n + extra)
        };
        if name == b"ok" {
            return match kind {
                0x01 => fixed(8)
                    .is_some_and(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) == 1.0),
                0x10 => fixed(4).is_some_and(|b| b == 1_i32.to_le_bytes()),
                0x12 => fixed(8).is_some_and(|b| b == 1_i64.to_le_bytes()),
                0x08 => fixed(1) == Some(&[1]),
                _ => false,
            };
        }
        let size = match kind {
            0x01 | 0x09 | 0x11 | 0x12 => Some(8),
            0x10 => Some(4),
            0x08 => Some(1),
            0x0A | 0x06 | 0x7F | 0xFF => Some(0),
            0x07 => Some(12),
            0x13 => Some(16),
            0x02 | 0x0D | 0x0E => length_prefixed(4),
            0x03 | 0x04 => length_prefixed(0),
            0x05 => length_prefixed(5),
            _ => None,
        };
        let Some(size) = size else {
            return false;
        };
        at += 2 + name_length + size;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Resp {
        read_resp(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn resp_commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            encode_command(&["CLUSTER", "INFO"]),
            b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n".to_vec()
        );
    }

    #[test]
    fn resp_replies_of_every_kind_parse() {
        assert_eq!(parse(b"+PONG\r\n"), Resp::Simple("PONG".into()));
        assert_eq!(parse(b"-ERR no\r\n"), Resp::Error("ERR no".into()));
        assert_eq!(parse(b":42\r\n"), Resp::Integer(42));
        assert_eq!(parse(b"$-1\r\n"), Resp::Bulk(None));
        assert_eq!(parse(b"*-1\r\n"), Resp::Array(None));
        assert_eq!(
            parse(b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"),
            Resp::Array(Some(vec![
                Resp::Bulk(Some(b"127.0.0.1".to_vec())),
                Resp::Bulk(Some(b"6380".to_vec()))
            ]))
        );
    }

    #[test]
    fn truncated_resp_is_an_error_not_a_panic() {
        assert!(read_resp(&mut &b"$10\r\nabc"[..]).is_err());
        assert!(read_resp(&mut &b""[..]).is_err());
        assert!(read_resp(&mut &b"?x\r\n"[..]).is_err());
    }

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n";
        assert_eq!(info_field(info, "cluster_state").as_deref(), Some("ok"));
        assert_eq!(
            info_field(info, "cluster_slots_assigned").as_deref(),
            Some("16384")
        );
        assert_eq!(info_field(info, "cluster"), None);
    }

    fn document(elements: &[u8]) -> Vec<u8> {
        let mut doc = (elements.len() as i32 + 5).to_le_bytes().to_vec();
        doc.extend_from_slice(elements);
        doc.push(0);
        doc
    }

    #[test]
    fn bson_ok_reads_the_ok_field_after_other_fields() {
        let mut elements = vec![0x02];
        elements.extend_from_slice(b"msg\0");
        elements.extend_from_slice(&3_i32.to_le_bytes());
        elements.extend_from_slice(b"hi\0");
        elements.push(0x01);
        elements.extend_from_slice(b"ok\0");
        elements.extend_from_slice(&1.0_f64.to_le_bytes());
        assert!(bson_ok(&document(&elements)));
    }

    #[test]
    fn bson_ok_zero_or_missing_is_not_ok() {
        let mut elements = vec![0x01];
        elements.extend_from_slice(b"ok\0");
        elements.extend_from_slice(&0.0_f64.to_le_bytes());
        assert!(!bson_ok(&document(&elements)));
        assert!(!bson_ok(&document(&[])));
        assert!(!bson_ok(&[1, 2]));
    }

    #[test]
    fn mongodb_ping_message_is_a_well_formed_op_msg() {
        let message = mongodb_ping_message();
        let length = i32::from_le_bytes(message[..4].try_into().unwrap());
        assert_eq!(length as usize, message.len());
        assert_eq!(
            i32::from_le_bytes(message[12..16].try_into().unwrap()),
            OP_MSG
        );
        let document = &message[21..];
        let document_length = i32::from_le_bytes(document[..4].try_into().unwrap());
        assert_eq!(document_length as usize, document.len());
        assert_eq!(*document.last().unwrap(), 0);
    }
}
