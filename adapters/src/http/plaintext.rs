//! Plain HTTP sent to the TLS port gets the answer Go's net/http gives it (and so every
//! controller-runtime webhook): `400`, "Client sent an HTTP request to an HTTPS server.", then
//! the connection closes. Without it, someone who forgot `https://` sees the connection close
//! with no reason given.
//!
//! A TLS client opens with a handshake record, whose first byte is 0x16. Anything else is not
//! TLS; its first five bytes, where a TLS record header would be, are compared with the starts
//! of HTTP requests Go recognises (`tlsRecordHeaderLooksLikeHTTP`).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Go's answer, byte for byte: HTTP/1.0, no headers.
pub const ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The content type of a TLS handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// The starts of plain HTTP requests, as Go's net/http recognises them.
const HTTP_STARTS: [&[u8; 5]; 5] = [b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO"];

/// How a connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A TLS handshake record: nothing has been read, the handshake sees every byte.
    Tls,
    /// A plain HTTP request.
    Http,
    /// Neither, or the client closed before sending five bytes.
    Other,
    /// The client closed before sending a byte.
    Closed,
}

impl Opening {
    /// How a connection that opens with `first` (its first five bytes, or fewer when it closed
    /// before) opens.
    pub fn of(first: &[u8]) -> Self {
        match first {
            [HANDSHAKE_RECORD, ..] => Self::Tls,
            _ if HTTP_STARTS.iter().any(|start| first == *start) => Self::Http,
            _ => Self::Other,
        }
    }

    /// Reads how `stream` opens: peeks at its first byte, and reads the first five (which TLS
    /// then never needs) only when they are not TLS. Waits for the client as long as it takes:
    /// the caller bounds that with the head deadline.
    pub async fn read(stream: &mut TcpStream) -> std::io::Result<Self> {
        let mut first = [0u8; 5];
        if stream.peek(&mut first[..1]).await? == 0 {
            return Ok(Self::Closed);
        }
        if first[0] == HANDSHAKE_RECORD {
            return Ok(Self::Tls);
        }
        let mut read = 0;
        while read < first.len() {
            match stream.read(&mut first[read..]).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok(Self::of(&first[..read]))
    }
}

/// How much of the rest of the request is read, at most, before the connection closes.
const DRAIN_BYTES: usize = 64 * 1024;

/// Writes [`ANSWER`], ends the stream, and reads what is left of the request until the client
/// closes: closing with unread bytes would send a reset, which can discard the answer before the
/// client reads it. Waits as long as the client takes: the caller bounds that with the head
/// deadline. Failures are not reported: the client has gone, and nothing is left to do.
pub async fn answer(stream: &mut TcpStream) {
    if stream.write_all(ANSWER).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::client_hello(&[0x16, 0x03, 0x01, 0x02, 0x00], Opening::Tls)]
    #[case::get(b"GET /", Opening::Http)]
    #[case::head(b"HEAD ", Opening::Http)]
    #[case::post(b"POST ", Opening::Http)]
    #[case::put(b"PUT /", Opening::Http)]
    #[case::options(b"OPTIO", Opening::Http)]
    #[case::get_of_a_full_url(b"GET h", Opening::Other)]
    #[case::delete_go_does_not_know(b"DELET", Opening::Other)]
    #[case::lower_case(b"get /", Opening::Other)]
    #[case::closed_early(b"GET", Opening::Other)]
    #[case::nothing(b"", Opening::Other)]
    #[case::tls_alert(&[0x15, 0x03, 0x03, 0x00, 0x02], Opening::Other)]
    fn sorts_openings_as_go_does(#[case] first: &[u8], #[case] opening: Opening) {
        assert_eq!(Opening::of(first), opening);
    }
}
