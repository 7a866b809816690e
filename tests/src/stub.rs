//! A small HTTP/1.1 server for tests: it stands in for the outside services a function
//! calls (the LLM's API) or that call a function (cargo-lambda's invoke endpoint). Each
//! request gets its own connection, closed after the answer.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, headers: vec![], body: body.to_string(), delay: Duration::ZERO }
    }
    /// An OpenAI-compatible chat completion whose message is `content`, with the provider's
    /// `usage` when given.
    pub fn chat_completion(content: &str, usage: Option<Value>) -> Self {
        let mut body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1764374400, "model": "qwen",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
        });
        if let Some(usage) = usage {
            body["usage"] = usage;
        }
        Self::json(200, body)
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    /// A v2 callback's `DocuSnap-Signature`.
    pub signature: Option<String>,
    pub body: Value,
    /// The body as sent, for checking a signature over it.
    pub raw_body: String,
}

pub type Handler = Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

pub struct Server {
    /// `http://127.0.0.1:<port><prefix>`.
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Answers each request with `handler`'s reply.
    pub async fn serve(prefix: &str, handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding a local port");
        let base = format!("http://{}{prefix}", listener.local_addr().expect("local address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (log, handler) = (log.clone(), handler.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    log.lock().expect("log").push(request.clone());
                    let reply = handler(request).await;
                    tokio::time::sleep(reply.delay).await;
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (name, value) in &reply.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(reply.body.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { base, seen }
    }

    /// Serves `replies` in order, one per request; a request past the script gets 500.
    pub async fn scripted(prefix: &str, replies: Vec<Reply>) -> Self {
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let handler: Handler = Arc::new(move |_| {
            let reply = replies.lock().expect("replies").pop_front();
            Box::pin(async move { reply.unwrap_or_else(|| Reply::json(500, json!({"error": "unscripted"}))) })
        });
        Self::serve(prefix, handler).await
    }

    /// Every request so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<Seen> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while data.len() < header_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let raw = &data[header_end..header_end + length];
    let body = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let raw_body = String::from_utf8_lossy(raw).into_owned();
    Some(Seen { path, authorization: header("authorization"), signature: header("docusnap-signature"), body, raw_body })
}
