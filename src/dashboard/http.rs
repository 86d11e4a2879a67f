//! Just enough HTTP/1.1 for the dashboard: one request per connection, read with hard
//! limits, answered and closed.
//!
//! Hand-written rather than a server crate, because what matters here is what a
//! malformed client cannot do: a request head over [`MAX_HEAD`] bytes is answered 431
//! without reading more, a body over [`MAX_BODY`] is answered 413, a client that sends
//! nothing for [`IO_TIMEOUT`] is dropped, and at most [`MAX_CONNECTIONS`] are served at
//! once (each on a short-lived thread of its own, so a slow one holds up nobody).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Most bytes of a request line and headers.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Most bytes of a request body (the dashboard's forms are a few dozen bytes).
pub(crate) const MAX_BODY: usize = 16 * 1024;
/// How long a connection may stay silent while its request is read or answered.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once; more are closed at once.
pub(crate) const MAX_CONNECTIONS: usize = 32;

/// A request as the dashboard sees it.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path, percent-decoded.
    pub(crate) path: String,
    /// Query parameters, percent-decoded.
    pub(crate) query: Vec<(String, String)>,
    /// Header names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of query parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name`.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The body's `application/x-www-form-urlencoded` fields.
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        parse_pairs(&String::from_utf8_lossy(&self.body))
    }
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A page.
    pub(crate) fn html(status: u16, body: String) -> Self {
        Response {
            status,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    /// A plain-text answer (errors of the protocol itself).
    pub(crate) fn text(status: u16, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// A redirect after a form (303: the browser follows with a GET).
    pub(crate) fn see_other(location: String) -> Self {
        let mut response = Response::text(303, "see other");
        response.headers.push(("Location", location));
        response
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The client closed or went silent: nobody to answer.
    Gone,
    /// A request we refuse, answered with this status and reason.
    Refused(u16, &'static str),
}

/// Reads one request from `stream`.
pub(crate) fn read_request(stream: &TcpStream) -> Result<Request, ReadError> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD as u64 + 1));
    let mut head = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => {
                if head.len() + line.len() > MAX_HEAD {
                    return Err(ReadError::Refused(431, "request head too large"));
                }
                return Err(ReadError::Gone);
            }
            Ok(_) => {}
            Err(_) => return Err(ReadError::Gone),
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(ReadError::Refused(431, "request head too large"));
        }
        if !line.ends_with(b"\n") {
            return Err(ReadError::Gone);
        }
        let text = String::from_utf8(line)
            .map_err(|_| ReadError::Refused(400, "request head is not UTF-8"))?;
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            break;
        }
        lines.push(text);
    }
    let mut lines = lines.into_iter();
    let request_line = lines
        .next()
        .ok_or(ReadError::Refused(400, "empty request"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Refused(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(ReadError::Refused(400, "malformed request line"));
    }
    let mut request = Request {
        method: method.to_string(),
        ..Request::default()
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    request.path = percent_decode(path);
    request.query = parse_pairs(query);
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(ReadError::Refused(400, "malformed header"))?;
        request
            .headers
            .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::Refused(411, "send a Content-Length, not chunks"));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(value) => value
            .parse::<usize>()
            .map_err(|_| ReadError::Refused(400, "malformed Content-Length"))?,
    };
    if length > MAX_BODY {
        return Err(ReadError::Refused(413, "request body too large"));
    }
    // The reader may hold the body's first bytes already; let it read the rest.
    let buffered = reader.buffer().len();
    reader
        .get_mut()
        .set_limit(length.saturating_sub(buffered) as u64);
    let mut body = Vec::with_capacity(length);
    (&mut reader)
        .take(length as u64)
        .read_to_end(&mut body)
        .map_err(|_| ReadError::Gone)?;
    if body.len() < length {
        return Err(ReadError::Gone);
    }
    request.body = body;
    Ok(request)
}

/// Writes `response` and closes the exchange.
pub(crate) fn write_response(stream: &mut TcpStream, response: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// `a=1&b=x%20y` as pairs, percent- and plus-decoded.
pub(crate) fn parse_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&name.replace('+', " ")),
                percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes; a malformed escape stays as it is, and bytes that are not
/// UTF-8 become U+FFFD.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes `text` for a URL's query or path segment.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
