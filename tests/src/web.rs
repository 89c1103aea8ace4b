//! Clients for the HTTP/WebSocket API and a strict reader of the Prometheus
//! text format, for end-to-end tests.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// A response: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// One header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client of one daemon (a fresh connection per request).
#[derive(Debug, Clone)]
pub struct Http {
    /// The daemon's address.
    pub addr: SocketAddr,
    /// The API token.
    pub token: String,
    client: reqwest::Client,
}

impl Http {
    /// A client of `addr` using `token`.
    pub fn new(addr: SocketAddr, token: String) -> Http {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client");
        Http {
            addr,
            token,
            client,
        }
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `method path` with `headers` and `body`, exactly as given (no token added).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut rb = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            self.url(path),
        );
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.expect("HTTP request");
        Reply {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.expect("body"),
        }
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `POST /v1/rpc` of `body` with the token and extra headers.
    pub async fn post(&self, body: &str, headers: &[(&str, &str)]) -> Reply {
        let auth = self.bearer();
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        h.extend_from_slice(headers);
        self.send("POST", "/v1/rpc", &h, Some(body.to_string()))
            .await
    }

    /// One JSON-RPC call over `POST /v1/rpc`; `Err` holds the error object.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let r = self.post(&body.to_string(), &[]).await;
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        let v = r.json();
        assert_eq!(v["id"], 1);
        match v.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(v["result"].clone()),
        }
    }

    /// `GET path` with the token.
    pub async fn get(&self, path: &str) -> Reply {
        let auth = self.bearer();
        self.send("GET", path, &[("authorization", &auth)], None)
            .await
    }

    /// Sends raw bytes on a new connection and reads until the daemon closes
    /// it (panics after 10 s); returns the status code (0 for none) and the
    /// whole response.
    pub async fn raw(&self, bytes: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        s.write_all(bytes).await.expect("write");
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("the daemon did not close the connection within 10 s")
            .ok();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    /// Opens `GET path` as a WebSocket with these headers (`Host` included
    /// unless overridden); `Err` is the HTTP status of a refused upgrade.
    pub async fn ws(&self, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        let mut req = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .expect("request");
        for (k, v) in headers {
            req.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        match tokio_tungstenite::client_async(req, tcp).await {
            Ok((ws, _)) => Ok(Ws {
                ws,
                next_id: 1,
                notifications: Vec::new(),
            }),
            Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("WebSocket handshake failed: {e}"),
        }
    }

    /// A WebSocket on `/v1/ws?token=TOKEN`, as a browser opens it.
    pub async fn ws_with_query_token(&self) -> Ws {
        self.ws(&format!("/v1/ws?token={}", self.token), &[])
            .await
            .expect("WebSocket")
    }
}

/// What a WebSocket read gave.
#[derive(Debug, Clone, PartialEq)]
pub enum WsRead {
    /// A JSON message.
    Json(Value),
    /// A close frame: code and reason.
    Closed(u16, String),
    /// The connection ended without a close frame (or with an error).
    Ended,
}

/// A JSON-RPC client over a WebSocket.
#[derive(Debug)]
pub struct Ws {
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    /// Notifications received while waiting for answers.
    pub notifications: Vec<Value>,
}

impl Ws {
    /// Sends one frame.
    pub async fn send_frame(&mut self, m: Message) {
        self.ws.send(m).await.expect("WebSocket send");
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let m = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_frame(Message::text(m.to_string())).await;
        id
    }

    /// The next message, close or end (panics after 30 s).
    pub async fn read(&mut self) -> WsRead {
        self.read_within(Duration::from_secs(30))
            .await
            .expect("no WebSocket message within 30 s")
    }

    /// The next message, close or end; `None` after `d` without one.
    pub async fn read_within(&mut self, d: Duration) -> Option<WsRead> {
        loop {
            let m = tokio::time::timeout(d, self.ws.next()).await.ok()?;
            return Some(match m {
                Some(Ok(Message::Text(t))) => {
                    WsRead::Json(serde_json::from_str(t.as_str()).expect("daemon sent JSON"))
                }
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    WsRead::Closed(code.into(), reason.as_str().to_string())
                }
                Some(Ok(Message::Close(None))) => WsRead::Closed(1005, String::new()),
                Some(Ok(Message::Binary(_))) => panic!("the daemon sent a binary frame"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => WsRead::Ended,
            });
        }
    }

    /// Waits for the answer to `id`; `Err` holds the error object.
    pub async fn answer(&mut self, id: u64) -> Result<Value, Value> {
        loop {
            match self.read().await {
                WsRead::Json(m) if m.get("id") == Some(&json!(id)) => {
                    return match m.get("error") {
                        Some(e) => Err(e.clone()),
                        None => Ok(m["result"].clone()),
                    };
                }
                WsRead::Json(m) if m.get("method").is_some() => self.notifications.push(m),
                WsRead::Json(m) => panic!("unexpected message {m}"),
                other => panic!("connection ended before the answer: {other:?}"),
            }
        }
    }

    /// One call.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send(method, params).await;
        self.answer(id).await
    }

    /// Waits for a notification matching `pred`.
    pub async fn notification(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.notifications.iter().position(&pred) {
            return self.notifications.remove(i);
        }
        loop {
            match self.read().await {
                WsRead::Json(m) if m.get("method").is_some() && pred(&m) => return m,
                WsRead::Json(_) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSample {
    /// Metric name.
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl PromSample {
    /// The value of label `k`.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut cs = s.chars();
    let ok_first = |c: char| c == '_' || c.is_ascii_alphabetic() || (colon && c == ':');
    matches!(cs.next(), Some(c) if ok_first(c)) && cs.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Reads the Prometheus text exposition format (0.0.4) strictly: every
/// line a `# HELP`, a `# TYPE` (once per family, before its samples, a
/// known type), another comment, or a sample whose name belongs to the
/// declared family; label names and values well-formed and escaped; values
/// numbers; the text ends with a newline. Written from the format's
/// description, independently of the daemon's encoder.
pub fn parse_prometheus(text: &str) -> Result<Vec<PromSample>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text must end with a newline".into());
    }
    let mut types: Vec<(String, String)> = Vec::new();
    let mut sampled: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: &str| Err(format!("line {}: {m}: {line:?}", n + 1));
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let parts: Vec<&str> = rest.trim_start().splitn(3, ' ').collect();
            match parts.first() {
                Some(&"TYPE") => {
                    if parts.len() != 3 || !is_name(parts[1], true) {
                        return err("bad TYPE line");
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&parts[2])
                    {
                        return err("unknown type");
                    }
                    if types.iter().any(|(f, _)| f == parts[1]) {
                        return err("second TYPE for a family");
                    }
                    if sampled.iter().any(|f| f == parts[1]) {
                        return err("TYPE after the family's samples");
                    }
                    types.push((parts[1].to_string(), parts[2].to_string()));
                }
                Some(&"HELP") => {
                    if parts.len() < 2 || !is_name(parts[1], true) {
                        return err("bad HELP line");
                    }
                    let help = parts.get(2).copied().unwrap_or("");
                    let mut cs = help.chars();
                    while let Some(c) = cs.next() {
                        if c == '\\' && !matches!(cs.next(), Some('\\' | 'n')) {
                            return err("bad escape in HELP");
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        // name{labels} value [timestamp]
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| format!("line {}: no value: {line:?}", n + 1))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return err("bad metric name");
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end = loop {
                // label name
                let start = match chars.peek() {
                    Some(&(i, '}')) => break i,
                    Some(&(i, _)) => i,
                    None => return err("unterminated labels"),
                };
                let mut eq = None;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        eq = Some(i);
                        break;
                    }
                }
                let Some(eq) = eq else {
                    return err("label without '='");
                };
                let lname = &r[start..eq];
                if !is_name(lname, false) || lname.starts_with("__") {
                    return err("bad label name");
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return err("label value must be quoted");
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return err("bad escape in a label value"),
                        },
                        Some((_, '"')) => break,
                        Some((_, '\n')) | None => return err("unterminated label value"),
                        Some((_, c)) => value.push(c),
                    }
                }
                if labels.iter().any(|(n, _): &(String, String)| n == lname) {
                    return err("repeated label");
                }
                labels.push((lname.to_string(), value));
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => break i,
                    _ => return err("expected ',' or '}' after a label"),
                }
            };
            rest = &r[end + 1..];
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if !rest.starts_with(' ') || fields.is_empty() || fields.len() > 2 {
            return err("expected ' value [timestamp]'");
        }
        let value = match fields[0] {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse::<f64>()
                .map_err(|_| format!("line {}: bad value: {line:?}", n + 1))?,
        };
        if fields.len() == 2 && fields[1].parse::<i64>().is_err() {
            return err("bad timestamp");
        }
        let family = types
            .iter()
            .filter(|(f, _)| {
                name == f
                    || ["_total", "_bucket", "_sum", "_count", "_created"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f.as_str()))
            })
            .map(|(f, _)| f.clone())
            .next_back();
        match family {
            Some(f) => {
                if sampled.last() != Some(&f) {
                    if sampled.contains(&f) {
                        return err("a family's samples are not together");
                    }
                    sampled.push(f);
                }
            }
            None => return err("sample without a TYPE line for its family"),
        }
        out.push(PromSample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_accepts_good_text_and_refuses_bad() {
        let good = "# HELP a_total A \\\\ b\\n.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\na_total 4 1700000000000\n# TYPE g gauge\ng -1.5e3\n";
        let s = parse_prometheus(good).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].label("y"), Some("q\"\\\n"));
        assert_eq!(s[2].value, -1500.0);
        for bad in [
            "a 1\n",
            "# TYPE a counter\na 1",
            "# TYPE a counter\na one\n",
            "# TYPE a counter\na{x=1} 1\n",
            "# TYPE a counter\na{x=\"1\" 1\n",
            "# TYPE a counter\na{x=\"\\q\"} 1\n",
            "# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n",
            "# TYPE a counter\n# TYPE a gauge\n",
            "# TYPE a countr\n",
            "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n",
            "# TYPE 1a counter\n",
            "# TYPE a counter\na{1x=\"1\"} 1\n",
            "# TYPE a counter\na  \n",
        ] {
            assert!(parse_prometheus(bad).is_err(), "{bad:?}");
        }
    }
}
