//! API v2's domain: a task id that names its type and 128 random bits, a bearer token,
//! pages uploaded straight to S3 and sealed with AES-256-GCM under the task key with the
//! task and page index as associated data, the task's manifest, and signed callbacks.
//! `functions/upload/openapi.json` is the wire contract; the upload function serves it.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64URL};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::codes::{ErrorCode, Failure};
use crate::crypto::{sha256_hex, AesKey, CryptoError, GCM_NONCE_BYTES, GCM_TAG_BYTES};
use crate::ids::{ClientId, TaskType};
use crate::task::TaskId;

/// Most pages (uploads) in one v2 task: a long form or a statement photographed page by
/// page. A PDF upload counts once here; its own pages are bounded by the input stage (200).
pub const MAX_PAGES: usize = 50;
/// Largest page, in plaintext bytes: a 48-megapixel phone photo as JPEG or HEIC is 8-15
/// MB, and v1 promised 20 MiB per image.
pub const MAX_PAGE_BYTES: u64 = 20 * 1024 * 1024;
/// The sealed page's overhead: nonce and tag.
pub const SEAL_OVERHEAD: u64 = (GCM_NONCE_BYTES + GCM_TAG_BYTES) as u64;
/// How long a task waits for its pages: 15 minutes is 20 MiB pages over a slow mobile
/// uplink (about 1 Mbit/s) a few times over, and SQS's longest message delay, which is how
/// the deadline is enforced (a delayed message to the OCR queue).
pub const UPLOAD_WINDOW_SECS: i64 = 15 * 60;
/// How long after the upload deadline a page may still land: an upload that started just
/// before its URL expired (S3 checks expiry when a request starts) gets a third of the
/// window to finish, at most five minutes.
pub fn upload_grace_secs(window_secs: i64) -> i64 {
    (window_secs / 3).min(5 * 60)
}

/// Bytes of a task id (128 bits: not guessable, short enough for a URL).
const TASK_ID_BYTES: usize = 16;
/// Random bytes in a task token and a callback secret (256 bits).
const SECRET_BYTES: usize = 32;

/// A v2 task's public id: `<type>_<32 hex>`, e.g. `doc_9f0c…`. The type is part of it so
/// that the task's item is found from the id alone.
///
/// The hex is the first 128 bits of the SHA-256 of the wrapped task key's bytes. A
/// client seals its pages with the task id as associated data, and declares their
/// checksums when it creates the task: so it must know the id before the server answers.
/// The wrapped key is random (a fresh key, and RSA-OAEP is randomised), so the id is as
/// unguessable as a random one, and a key can start only one task.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct V2TaskId {
    pub task_type: TaskType,
    random: String,
}

impl V2TaskId {
    /// The id of the task whose wrapped key is `wrapped_base64`; `None` if it is not base64.
    pub fn for_key(task_type: TaskType, wrapped_base64: &str) -> Option<Self> {
        let wrapped = BASE64.decode(wrapped_base64.trim()).ok()?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &wrapped);
        Some(Self { task_type, random: hex(&digest.as_ref()[..TASK_ID_BYTES]) })
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (task_type, random) = s.split_once('_')?;
        let task_type = TaskType::parse(task_type)?;
        let well_formed =
            random.len() == 2 * TASK_ID_BYTES && random.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        well_formed.then(|| Self { task_type, random: random.to_owned() })
    }

    /// The task as the pipeline knows it: a client of its own (`v2:<hex>`), so that no v1
    /// request can name it, and no other task shares its partition.
    pub fn task_id(&self) -> TaskId {
        TaskId::new(ClientId::v2(&self.random), self.task_type, self.random.clone())
    }

    /// The v2 id of a pipeline task, when it is a v2 task.
    pub fn of(id: &TaskId) -> Option<Self> {
        let random = id.client_id.as_str().strip_prefix(crate::ids::V2_NAMESPACE)?;
        (random == id.sha256).then(|| Self { task_type: id.task_type, random: random.to_owned() })
    }

    /// Page `index`'s object: under the task's prefix, so ending the task removes it.
    pub fn page_key(&self, index: usize) -> String {
        format!("{}{PAGES_DIR}{index}{PAGE_SUFFIX}", self.task_id().object_prefix())
    }

    /// The manifest: the wrapped key, the declared pages, a fill task's sealed form and
    /// library; written at creation, read by the OCR function when the last page lands.
    pub fn manifest_key(&self) -> String {
        format!("{}{MANIFEST_OBJECT}", self.task_id().object_prefix())
    }

    /// The task and page a page object's key names, if it is one.
    pub fn of_page_key(key: &str) -> Option<(Self, usize)> {
        let rest = key.strip_prefix(crate::task::TASKS_PREFIX)?;
        let [_digest, task_type, random, dir, name] = rest.split('/').collect::<Vec<_>>()[..] else {
            return None;
        };
        let id = Self::parse(&format!("{task_type}_{random}"))?;
        let index: usize = name.strip_suffix(PAGE_SUFFIX)?.parse().ok()?;
        (format!("{dir}/") == PAGES_DIR && id.page_key(index) == key).then_some((id, index))
    }

    /// The associated data page `index` is sealed with: `<task id>/page/<index>`.
    pub fn page_aad(&self, index: usize) -> Vec<u8> {
        format!("{self}/page/{index}").into_bytes()
    }

    /// The associated data of the task's other sealed parts: `<task id>/<part>`.
    pub fn part_aad(&self, part: Part) -> Vec<u8> {
        format!("{self}/{}", part.as_str()).into_bytes()
    }
}

impl std::fmt::Display for V2TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.task_type, self.random)
    }
}

/// The sealed parts of a task besides its pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Form,
    Library,
    Result,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Form => "form",
            Part::Library => "library",
            Part::Result => "result",
        }
    }
}

/// Page objects live in `pages/` and end with `.page`: the bucket's notification filter
/// (template.yaml) sends exactly these to the OCR queue.
pub const PAGES_DIR: &str = "pages/";
pub const PAGE_SUFFIX: &str = ".page";
pub const MANIFEST_OBJECT: &str = "manifest.json";

/// A random secret as the client sees it (base64url) and as the table keeps it (hex
/// SHA-256 for a token, which is only compared; the secret itself for a callback key,
/// which signs).
pub fn new_secret() -> Result<String, CryptoError> {
    Ok(BASE64URL.encode(random_bytes::<SECRET_BYTES>()?))
}

/// What the table keeps of a token.
pub fn token_digest(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Whether `presented` is the token whose digest is `stored`. Digests of equal length are
/// compared in constant time, so timing says nothing of how much matched.
pub fn token_matches(stored: &str, presented: &str) -> bool {
    let presented = token_digest(presented);
    stored.len() == presented.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(stored.as_bytes(), presented.as_bytes()).is_ok()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| CryptoError::Encryption)?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One page as the client declares it before uploading it: the sealed object's size and
/// SHA-256 (hex), to which its upload URL is bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSpec {
    pub size: u64,
    pub sha256: String,
}

impl PageSpec {
    /// The checksum as S3's `x-amz-checksum-sha256` header carries it (base64).
    pub fn sha256_base64(&self) -> String {
        let bytes: Vec<u8> = (0..self.sha256.len() / 2)
            .filter_map(|i| u8::from_str_radix(&self.sha256[2 * i..2 * i + 2], 16).ok())
            .collect();
        BASE64.encode(bytes)
    }
}

/// A parsed `POST /api/v2/tasks`.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRequest {
    pub task_type: TaskType,
    pub pages: Vec<PageSpec>,
    /// base64 RSA-OAEP-SHA256 of the 32-byte task key, as v1's `aes_key`.
    pub key: String,
    /// base64 of the sealed library (a JSON object), and a fill task's sealed form.
    pub library: Option<String>,
    pub form: Option<String>,
    pub callback_url: Option<String>,
}

/// v2's HTTP status for each code it answers a request with.
pub fn status_of(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Unauthorized => 401,
        ErrorCode::KeyAlreadyUsed => 409,
        ErrorCode::QuotaExceeded => 429,
        ErrorCode::TaskNotFound => 404,
        ErrorCode::PayloadTooLarge => 413,
        ErrorCode::TooManyPages | ErrorCode::ImageTooLarge => 413,
        ErrorCode::DatabaseError | ErrorCode::ProcessingError => 503,
        _ => 400,
    }
}

impl CreateRequest {
    pub fn parse(body: &[u8]) -> Result<Self, Failure> {
        if body.len() > crate::limits::MAX_BODY_BYTES {
            return Err(Failure::new(
                ErrorCode::PayloadTooLarge,
                "the request is over 6 MiB (Lambda's limit); pages go to their upload URLs, not in the request",
            ));
        }
        let invalid = |message: &str| Failure::new(ErrorCode::InvalidField, message);
        let value: Value =
            serde_json::from_slice(body).map_err(|_| Failure::new(ErrorCode::InvalidJson, "the body is not JSON"))?;
        let object =
            value.as_object().ok_or_else(|| Failure::new(ErrorCode::InvalidJson, "the body is not a JSON object"))?;
        let text = |name: &str| -> Result<Option<String>, Failure> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(&format!("`{name}` must be a string"))),
            }
        };
        let task_type =
            text("type")?.ok_or_else(|| Failure::new(ErrorCode::MissingRequiredField, "`type` is required"))?;
        let task_type = TaskType::parse(&task_type)
            .ok_or_else(|| Failure::new(ErrorCode::InvalidType, "`type` is doc, form or fill"))?;
        let key = text("key")?
            .ok_or_else(|| Failure::new(ErrorCode::MissingRequiredField, "`key` (the wrapped task key) is required"))?;
        let pages: Vec<PageSpec> = match object.get("pages") {
            None | Some(Value::Null) => Vec::new(),
            Some(pages) => {
                serde_json::from_value(pages.clone()).map_err(|_| invalid("`pages` is a list of {size, sha256}"))?
            }
        };
        if task_type.has_pages() && pages.is_empty() {
            return Err(Failure::new(ErrorCode::MissingContent, "a doc or form task declares at least one page"));
        }
        if !task_type.has_pages() && !pages.is_empty() {
            return Err(invalid("a fill task has no pages"));
        }
        if pages.len() > MAX_PAGES {
            return Err(Failure::new(ErrorCode::TooManyPages, format!("at most {MAX_PAGES} pages")));
        }
        for (i, page) in pages.iter().enumerate() {
            if page.size <= SEAL_OVERHEAD || page.size > MAX_PAGE_BYTES + SEAL_OVERHEAD {
                return Err(Failure::new(
                    ErrorCode::ImageTooLarge,
                    format!(
                        "page {i}: a sealed page is {} to {} bytes",
                        SEAL_OVERHEAD + 1,
                        MAX_PAGE_BYTES + SEAL_OVERHEAD
                    ),
                ));
            }
            if page.sha256.len() != 64 || !page.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(invalid(&format!("page {i}: `sha256` is 64 lowercase hex digits")));
            }
        }
        let form = text("form")?;
        if task_type == TaskType::Fill && form.is_none() {
            return Err(Failure::new(ErrorCode::MissingContent, "a fill task carries its sealed `form`"));
        }
        Ok(Self { task_type, pages, key, library: text("library")?, form, callback_url: text("callback_url")? })
    }
}

/// Opens a sealed JSON object of the task (its form or library).
pub fn open_object(
    key: &AesKey, id: &V2TaskId, part: Part, sealed_base64: &str,
) -> Result<Map<String, Value>, Failure> {
    let bad = || {
        Failure::new(
            ErrorCode::AesDecryptionFailed,
            format!(
                "`{}` does not open under the task key with `{id}/{}` as associated data",
                part.as_str(),
                part.as_str()
            ),
        )
    };
    let sealed = BASE64.decode(sealed_base64.trim()).map_err(|_| bad())?;
    let plain = key.open_gcm(sealed, &id.part_aad(part)).map_err(|_| bad())?;
    match serde_json::from_slice::<Value>(&plain) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Failure::new(ErrorCode::InvalidContent, format!("`{}` is not a JSON object", part.as_str()))),
    }
}

/// What the OCR function needs when the last page lands, kept beside the pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    pub pages: Vec<PageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
}

/// What the task table keeps of a v2 task besides its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Record {
    pub token_digest: String,
    pub pages: usize,
    /// Pages that have arrived (distinct indexes).
    pub arrived: usize,
    /// Pages read so far, once split (a PDF upload counts each of its pages).
    pub read: usize,
    pub upload_deadline: Timestamp,
    pub callback: Option<Callback>,
    /// The LLM tokens its extraction used (zero until then, or with the rules alone).
    pub usage: crate::task::TokenUsage,
}

/// Where and how a task's end is pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    pub url: String,
    pub secret: crate::secret::Secret,
}

/// The OCR queue's message when a v2 task's upload deadline passes: a task still
/// receiving pages then ends with `UPLOAD_EXPIRED`. Also sent, undelayed, to start a fill
/// task, which has no pages to wait for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Message {
    pub v2_task: String,
    pub event: V2Event,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum V2Event {
    UploadDeadline,
    Start,
}

/// Where a v2 task's end is marked for the callback function: an object under this prefix
/// (the bucket notifies the callback queue of it), named by the task. It carries no
/// content and no secret: the callback function reads the URL and key from the table.
pub const CALLBACKS_PREFIX: &str = "callbacks/";

impl V2TaskId {
    pub fn callback_key(&self) -> String {
        format!("{CALLBACKS_PREFIX}{self}.json")
    }

    pub fn of_callback_key(key: &str) -> Option<Self> {
        Self::parse(key.strip_prefix(CALLBACKS_PREFIX)?.strip_suffix(".json")?)
    }
}

pub const SIGNATURE_HEADER: &str = "DocuSnap-Signature";

/// The callback's `DocuSnap-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>" under the task's callback secret>`. The timestamp is signed with the body,
/// so a receiver can refuse a replay older than a few minutes.
pub fn sign_callback(secret: &str, timestamp: Timestamp, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex(tag.as_ref()))
}

/// Whether callbacks may go to plain HTTP and loopback addresses: only in local runs and
/// tests (`DOCUSNAP_V2_CALLBACK_ALLOW_LOOPBACK`), never in the template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    pub allow_loopback: bool,
}

impl CallbackPolicy {
    /// Checks a callback URL's form: HTTPS (HTTP to loopback when allowed), a host, no
    /// credentials, and no address literal outside the public internet. Names are checked
    /// again, resolved, when the callback is sent ([`CallbackPolicy::allows_ip`]).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, Failure> {
        let refuse = |why: &str| Failure::new(ErrorCode::CallbackUrlRefused, format!("callback_url: {why}"));
        if raw.len() > 2048 {
            return Err(refuse("longer than 2,048 characters"));
        }
        let url = url::Url::parse(raw).map_err(|_| refuse("not an absolute URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("credentials in the URL"));
        }
        let host = url.host().ok_or_else(|| refuse("no host"))?;
        let loopback = match &host {
            url::Host::Domain(name) => {
                name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
            }
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback && self.allow_loopback => {}
            _ => return Err(refuse("must be https")),
        }
        if loopback && !self.allow_loopback {
            return Err(refuse("a loopback address"));
        }
        let ip = match host {
            url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = ip.filter(|ip| !self.allows_ip(*ip)) {
            return Err(refuse(&format!("{ip} is not a public address")));
        }
        Ok(url)
    }

    /// Whether a callback may connect to `ip`: public unicast only (loopback when allowed).
    /// Private, link-local (the instance metadata service's 169.254.169.254), shared,
    /// multicast, documentation and unspecified ranges are refused, IPv4-mapped IPv6 by
    /// its IPv4 address.
    pub fn allows_ip(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                !(v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast()
                    || v4.is_documentation()
                    || a == 0
                    || (a == 100 && (64..128).contains(&b))
                    || (a == 192 && b == 0)
                    || (a == 198 && (18..20).contains(&b))
                    || a >= 240)
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                !(v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || first == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_prints_its_url_and_not_its_secret() {
        let callback =
            Callback { url: "https://example.com/hook".into(), secret: crate::secret::Secret::new("whsec-123") };
        let printed = format!("{callback:?} {callback:#?}");
        assert!(!printed.contains("whsec-123") && printed.contains("https://example.com/hook"), "{printed}");
    }

    #[test]
    fn the_grace_is_a_third_of_the_window_at_most_five_minutes() {
        assert_eq!(upload_grace_secs(900), 300);
        assert_eq!(upload_grace_secs(6), 2);
    }

    fn generate(task_type: TaskType) -> V2TaskId {
        V2TaskId::for_key(task_type, &BASE64.encode(random_bytes::<256>().unwrap())).unwrap()
    }

    #[test]
    fn task_ids_round_trip_and_name_their_own_partition() {
        let id = generate(TaskType::Form);
        let text = id.to_string();
        assert!(text.starts_with("form_") && text.len() == 5 + 32, "{text}");
        assert_eq!(V2TaskId::parse(&text), Some(id.clone()));
        assert_eq!(V2TaskId::of(&id.task_id()), Some(id.clone()));
        assert!(id.task_id().client_id.is_v2());
        for bad in [
            "form_",
            "form_XYZ",
            "nope_00112233445566778899aabbccddeeff",
            "doc_00112233445566778899AABBCCDDEEFF",
            "doc-00112233445566778899aabbccddeeff",
        ] {
            assert_eq!(V2TaskId::parse(bad), None, "{bad}");
        }
        assert_ne!(generate(TaskType::Doc), generate(TaskType::Doc));
        // The client computes the id from its wrapped key as the server does.
        let wrapped = BASE64.encode([7u8; 256]);
        let expected = &sha256_hex(&[7u8; 256])[..32];
        assert_eq!(V2TaskId::for_key(TaskType::Doc, &wrapped).unwrap().to_string(), format!("doc_{expected}"));
        assert_eq!(V2TaskId::for_key(TaskType::Doc, "not base64!"), None);
    }

    #[test]
    fn page_keys_parse_back_and_nothing_else_does() {
        let id = generate(TaskType::Doc);
        let key = id.page_key(7);
        assert!(key.starts_with(&id.task_id().object_prefix()) && key.ends_with(".page"), "{key}");
        assert_eq!(V2TaskId::of_page_key(&key), Some((id.clone(), 7)));
        // Another task's digest with this task's name, the manifest, an envelope: none is a page.
        let forged = key.replacen(&key[6..70], &"0".repeat(64), 1);
        for not_one in [forged, id.manifest_key(), id.task_id().envelope_key(), key.replace("/7.page", "/x.page")] {
            assert_eq!(V2TaskId::of_page_key(&not_one), None, "{not_one}");
        }
    }

    #[test]
    fn tokens_match_only_themselves() {
        let token = new_secret().unwrap();
        assert!(token.len() >= 43);
        let stored = token_digest(&token);
        assert!(token_matches(&stored, &token));
        assert!(!token_matches(&stored, &new_secret().unwrap()));
        assert!(!token_matches(&stored, ""));
    }

    fn request(value: Value) -> Result<CreateRequest, ErrorCode> {
        CreateRequest::parse(value.to_string().as_bytes()).map_err(|r| r.code)
    }

    #[test]
    fn create_requests_are_checked_field_by_field() {
        let page = serde_json::json!({"size": 1000, "sha256": "ab".repeat(32)});
        let ok = request(serde_json::json!({"type": "doc", "key": "k", "pages": [page]})).unwrap();
        assert_eq!((ok.task_type, ok.pages.len()), (TaskType::Doc, 1));
        assert_eq!(request(serde_json::json!({"key": "k", "pages": [page]})), Err(ErrorCode::MissingRequiredField));
        assert_eq!(
            request(serde_json::json!({"type": "scan", "key": "k", "pages": [page]})),
            Err(ErrorCode::InvalidType)
        );
        assert_eq!(
            request(serde_json::json!({"type": "doc", "key": "k", "pages": []})),
            Err(ErrorCode::MissingContent)
        );
        assert_eq!(
            request(serde_json::json!({"type": "doc", "key": "k", "pages": vec![page.clone(); 51]})),
            Err(ErrorCode::TooManyPages)
        );
        let huge = serde_json::json!({"size": MAX_PAGE_BYTES + SEAL_OVERHEAD + 1, "sha256": "ab".repeat(32)});
        assert_eq!(
            request(serde_json::json!({"type": "doc", "key": "k", "pages": [huge]})),
            Err(ErrorCode::ImageTooLarge)
        );
        let bad_hash = serde_json::json!({"size": 100, "sha256": "AB".repeat(32)});
        assert_eq!(
            request(serde_json::json!({"type": "doc", "key": "k", "pages": [bad_hash]})),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(request(serde_json::json!({"type": "fill", "key": "k"})), Err(ErrorCode::MissingContent));
        assert_eq!(
            request(serde_json::json!({"type": "fill", "key": "k", "form": "f", "pages": [page]})),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(
            request(serde_json::json!({"type": "doc", "key": 5, "pages": [page]})),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(CreateRequest::parse(b"[").map_err(|r| r.code), Err(ErrorCode::InvalidJson));
        let huge = vec![b' '; crate::limits::MAX_BODY_BYTES + 1];
        assert_eq!(
            CreateRequest::parse(&huge).map_err(|r| (r.code, status_of(r.code))),
            Err((ErrorCode::PayloadTooLarge, 413))
        );
    }

    #[test]
    fn page_checksums_convert_to_s3s_base64() {
        let spec = PageSpec { size: 3, sha256: sha256_hex(b"abc") };
        assert_eq!(spec.sha256_base64(), crate::crypto::sha256_base64(b"abc"));
    }

    #[test]
    fn callback_urls_must_be_public_https() {
        let strict = CallbackPolicy::default();
        assert!(strict.check_url("https://hooks.example.com/docusnap?x=1").is_ok());
        for refused in [
            "http://hooks.example.com/",
            "https://127.0.0.1/",
            "https://localhost/x",
            "https://10.0.0.5/",
            "https://192.168.1.1/",
            "https://172.16.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://user:pw@example.com/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert_eq!(
                strict.check_url(refused).map(|_| ()).map_err(|r| r.code),
                Err(ErrorCode::CallbackUrlRefused),
                "{refused}"
            );
        }
        let local = CallbackPolicy { allow_loopback: true };
        assert!(local.check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(local.check_url("http://10.0.0.5/hook").is_err(), "loopback only, not private ranges");
        assert!(local.check_url("https://169.254.169.254/").is_err());
    }

    #[test]
    fn callback_signatures_cover_the_timestamp_and_body() {
        let sig = sign_callback("secret", 1_800_000_000, r#"{"task_id":"doc_x","status":"completed"}"#);
        assert!(sig.starts_with("t=1800000000,v1=") && sig.len() == 16 + 64, "{sig}");
        assert_ne!(sig, sign_callback("secret", 1_800_000_001, r#"{"task_id":"doc_x","status":"completed"}"#));
        assert_ne!(sig, sign_callback("other", 1_800_000_000, r#"{"task_id":"doc_x","status":"completed"}"#));
        // RFC 4231 test case 2, as a check that this is HMAC-SHA256 itself.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex(aws_lc_rs::hmac::sign(&key, b"what do ya want for nothing?").as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
