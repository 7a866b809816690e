//! Test support: a fresh set of the template's resources on the moto server per test, the
//! upload function's state over them, and a v1 client that encrypts as real clients do.
//!
//! The moto endpoint comes from `DOCUSNAP_TEST_ENDPOINT` (set by `scripts/test`); tests
//! that need it fail with a clear message when it is missing rather than pass vacuously.

pub mod stub;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use docusnap_core::clock::ManualClock;
use docusnap_core::config::Limits;
use docusnap_core::crypto::{generate_private_key_pem, sha256_hex, AesKey, ClientWrap, ServerKey};
use docusnap_core::env::Moto;
use docusnap_core::store::{DynamoKeyBindings, DynamoTaskStore, S3BlobStore};
use docusnap_infra::events::{mappings, Invoke, Mapping, Runner};
use docusnap_infra::{Clients, LocalStack, Template};
use docusnap_upload::Upload;
use lambda_http::Body;
use serde_json::{json, Value};
use stub::{Handler, Reply, Server};

pub const ENDPOINT_VAR: &str = "DOCUSNAP_TEST_ENDPOINT";
/// A fixed, plausible start time (2026-11-01) so tests can move the clock freely.
pub const START: i64 = 1_793_491_200;

pub type TestUpload = Upload<Moto>;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn endpoint() -> String {
    std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: run the tests with scripts/test, which starts a moto server")
    })
}

/// SDK configuration for the moto server: dummy credentials, a region, the endpoint.
pub fn sdk_config() -> SdkConfig {
    let credentials = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "docusnap-tests");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(credentials))
        .build()
}

/// One RSA key per test process: generating it takes a noticeable fraction of a second.
pub fn server_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| generate_private_key_pem().expect("generating an RSA key"))
}

pub fn server_key() -> ServerKey {
    ServerKey::from_pem(server_key_pem()).expect("parsing the generated key")
}

/// A name prefix no other test (or earlier run on the same moto server) uses.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("t{}-{}-{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), nanos)
}

/// The template's resources on moto, the upload function over them, and its clock.
pub struct TestStack {
    pub sdk: SdkConfig,
    pub clients: Clients,
    pub stack: LocalStack,
    pub app: TestUpload,
    pub clock: Arc<ManualClock>,
}

/// The deployment's default quotas, as the template sets them.
pub const TEST_QUOTA: docusnap_core::quota::QuotaLimits = docusnap_core::quota::QuotaLimits {
    tasks_in_flight: docusnap_core::config::DEFAULT_QUOTA_TASKS_IN_FLIGHT as u32,
    pages_per_day: docusnap_core::config::DEFAULT_QUOTA_PAGES_PER_DAY as u32,
};

impl TestStack {
    pub async fn new() -> Self {
        Self::with_limits(Limits::default()).await
    }

    pub async fn with_limits(limits: Limits) -> Self {
        let sdk = sdk_config();
        let clients = Clients::new(&sdk);
        let template = Template::from_file(&repo_root().join("template.yaml")).expect("reading template.yaml");
        let stack =
            docusnap_infra::provision(&template, &clients, &unique_prefix()).await.expect("provisioning on moto");
        let clock = Arc::new(ManualClock::starting_at(START));
        let app = Upload {
            tasks: DynamoTaskStore::new(clients.dynamodb.clone(), stack.table("TasksTable").expect("tasks table")),
            blobs: S3BlobStore::new(clients.s3.clone(), stack.bucket("UploadsBucket").expect("uploads bucket")),
            keys: DynamoKeyBindings::new(
                clients.dynamodb.clone(),
                stack.table("KeyBindingsTable").expect("key bindings table"),
            ),
            clock: clock.clone(),
            key: server_key(),
            limits,
            quotas: docusnap_core::store::DynamoQuotaStore::new(
                clients.dynamodb.clone(),
                stack.table("QuotasTable").expect("quotas table"),
            ),
            quota: TEST_QUOTA,
            v2: docusnap_upload::V2Api {
                ocr_queue: docusnap_core::store::SqsQueue::new(
                    clients.sqs.clone(),
                    stack.queue_url("OcrQueue").expect("OCR queue"),
                ),
                callbacks: docusnap_core::v2::CallbackPolicy { allow_loopback: true },
                upload_window_secs: docusnap_core::v2::UPLOAD_WINDOW_SECS,
                storage_origin: endpoint(),
            },
        };
        Self { sdk, clients, stack, app, clock }
    }

    pub fn table(&self) -> &str {
        self.stack.table("TasksTable").expect("tasks table")
    }

    pub fn bucket(&self) -> &str {
        self.stack.bucket("UploadsBucket").expect("uploads bucket")
    }

    /// Sends one HTTP request through the upload function's handler.
    pub async fn call(&self, method: &str, path: &str, body: impl Into<Body>) -> (u16, Value) {
        let (status, text) = self.call_raw(method, path, body).await;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn call_raw(&self, method: &str, path: &str, body: impl Into<Body>) -> (u16, String) {
        let request = http::Request::builder().method(method).uri(path).body(body.into()).expect("request");
        let response = docusnap_upload::handle(&self.app, request).await.expect("the handler never fails");
        let status = response.status().as_u16();
        let text = String::from_utf8(response.body().to_vec()).expect("UTF-8 body");
        (status, text)
    }

    /// A request as API Gateway passes it on once its JWT authorizer verified a token
    /// whose subject is `subject` (payload 2.0, the claims in the request context).
    pub async fn call_as(&self, subject: &str, method: &str, path: &str, body: String) -> (u16, Value) {
        self.call_as_with(subject, method, path, &[], body).await
    }

    /// [`Self::call_as`] with more headers (lower-case names).
    pub async fn call_as_with(
        &self, subject: &str, method: &str, path: &str, headers: &[(&str, &str)], body: String,
    ) -> (u16, Value) {
        // The event the local HTTP API makes of it, with the claims its authorizer adds.
        let mut request = http::Request::builder().method(method).uri(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (parts, ()) = request.body(()).expect("request").into_parts();
        let mut event = docusnap_infra::gateway::event(&parts, body.as_bytes(), "192.0.2.1", "test");
        let claims = serde_json::Map::from_iter([("sub".to_owned(), Value::from(subject))]);
        docusnap_infra::gateway::with_claims(&mut event, claims);
        let request = lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event");
        let response = docusnap_upload::handle(&self.app, request).await.expect("the handler never fails");
        let status = response.status().as_u16();
        let text = String::from_utf8(response.body().to_vec()).expect("UTF-8 body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Sets one principal's own limits, as an operator does: the quota table's `limits` item.
    pub async fn set_own_limits(&self, principal: &str, tasks_in_flight: u32, pages_per_day: u32) {
        use aws_sdk_dynamodb::types::AttributeValue;
        use docusnap_core::store::quotas::attr;
        self.clients
            .dynamodb
            .put_item()
            .table_name(self.stack.table("QuotasTable").expect("quotas table"))
            .item(attr::PRINCIPAL, AttributeValue::S(principal.to_owned()))
            .item(attr::ITEM, AttributeValue::S("limits".into()))
            .item(attr::TASKS_IN_FLIGHT, AttributeValue::N(tasks_in_flight.to_string()))
            .item(attr::PAGES_PER_DAY, AttributeValue::N(pages_per_day.to_string()))
            .send()
            .await
            .expect("writing a limits item");
    }

    pub async fn process(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/process", body.to_string()).await
    }

    /// Every object key in the uploads bucket.
    pub async fn object_keys(&self) -> Vec<String> {
        let output = self.clients.s3.list_objects_v2().bucket(self.bucket()).send().await.expect("listing objects");
        output.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    /// Every item in the tasks table, as DynamoDB returns it.
    pub async fn items(&self) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let output =
            self.clients.dynamodb.scan().table_name(self.table()).consistent_read(true).send().await.expect("scan");
        output.items().to_vec()
    }
}

/// One OCR engine while any part of a test holds it (its sessions take a moment to load),
/// dropped with its last holder, not kept in a static past `main` (see
/// layers/ocr/tests/end_to_end.rs, `engine`).
pub fn ocr_engine() -> Arc<docusnap_ocr::OcrEngine> {
    static ENGINE: Mutex<Weak<docusnap_ocr::OcrEngine>> = Mutex::new(Weak::new());
    let mut held = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(engine) = held.upgrade() {
        return engine;
    }
    let config = docusnap_ocr::EngineConfig::from_env().unwrap_or_else(|e| panic!("{e}"));
    let engine = Arc::new(docusnap_ocr::OcrEngine::load(config).unwrap_or_else(|e| panic!("{e}")));
    *held = Arc::downgrade(&engine);
    engine
}

pub type TestOcr = docusnap_ocr_fn::OcrFunction<Moto>;

pub type TestExtract = docusnap_extract_fn::ExtractFunction<Moto>;

/// The LLM of tests that run on the rules.
pub type NoLlm = docusnap_extract::model::AnyChatModel;

/// A Lambda deadline as far off as the extract function's timeout.
pub fn lambda_deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(300)
}

impl TestStack {
    /// The OCR function over this stack, as its `main` builds it in AWS.
    pub fn ocr_function(&self) -> TestOcr {
        let queue = self.stack.queue_url("ExtractQueue").expect("extract queue");
        docusnap_ocr_fn::OcrFunction {
            tasks: DynamoTaskStore::new(self.clients.dynamodb.clone(), self.table()),
            blobs: S3BlobStore::new(self.clients.s3.clone(), self.bucket()),
            extract_queue: docusnap_core::store::SqsQueue::new(self.clients.sqs.clone(), queue),
            clock: self.clock.clone(),
            key: server_key(),
            engine: ocr_engine(),
            limits: Limits::default(),
            parallel_pages: 2,
            max_receives: docusnap_core::config::DEFAULT_MAX_RECEIVES,
            dead_letter_arn: self.stack.resources.get("OcrDeadLetterQueue").map(|r| r.arn.clone()),
            fan_out: Some(docusnap_ocr_fn::FanOut {
                ocr_queue: docusnap_core::store::SqsQueue::new(
                    self.clients.sqs.clone(),
                    self.stack.queue_url("OcrQueue").expect("OCR queue"),
                ),
                group_pages: docusnap_core::config::DEFAULT_GROUP_PAGES,
            }),
            fast_prefixes: Default::default(),
        }
    }

    /// The extract function over this stack, with `model` as its LLM (none: the rules).
    pub fn extract_function<M: Into<docusnap_extract::model::AnyChatModel>>(&self, model: Option<M>) -> TestExtract {
        let model = model.map(Into::into);
        docusnap_extract_fn::ExtractFunction {
            tasks: DynamoTaskStore::new(self.clients.dynamodb.clone(), self.table()),
            blobs: S3BlobStore::new(self.clients.s3.clone(), self.bucket()),
            clock: self.clock.clone(),
            key: server_key(),
            extractor: docusnap_extract::Extractor { model, fallback_to_rules: true },
            timeout: docusnap_core::config::DEFAULT_FUNCTION_TIMEOUT,
            dead_letter_arn: self.stack.resources.get("ExtractDeadLetterQueue").map(|r| r.arn.clone()),
        }
    }

    /// Runs the OCR function on what its queue holds until it is empty (fan-out sends
    /// page groups back to it), each batch without a failure, then the extract function
    /// on the rules.
    pub async fn run_chain(&self) {
        let ocr = self.ocr_function();
        loop {
            let event = self.take_messages("OcrQueue").await;
            if event.records.is_empty() {
                break;
            }
            let response = docusnap_ocr_fn::handle(&ocr, event).await;
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
        }
        let extract = self.extract_function::<NoLlm>(None);
        docusnap_extract_fn::handle(&extract, self.take_messages("ExtractQueue").await, lambda_deadline()).await;
    }

    /// The callback function over this stack (loopback allowed, as in local runs).
    pub fn callback_function(&self) -> docusnap_callback_fn::CallbackFunction<Moto> {
        docusnap_callback_fn::CallbackFunction {
            tasks: DynamoTaskStore::new(self.clients.dynamodb.clone(), self.table()),
            blobs: S3BlobStore::new(self.clients.s3.clone(), self.bucket()),
            queue: Some(docusnap_core::store::SqsQueue::new(
                self.clients.sqs.clone(),
                self.stack.queue_url("CallbackQueue").expect("callback queue"),
            )),
            clock: self.clock.clone(),
            policy: docusnap_core::v2::CallbackPolicy { allow_loopback: true },
            dead_letter_arn: self.stack.resources.get("CallbackDeadLetterQueue").map(|r| r.arn.clone()),
        }
    }

    /// Takes every message now on a queue of the template (by logical id), as an SQS
    /// event the way Lambda's event source mapping would deliver it.
    pub async fn take_messages(&self, queue: &str) -> aws_lambda_events::event::sqs::SqsEvent {
        let url = self.stack.queue_url(queue).expect("queue");
        let mut records = Vec::new();
        loop {
            let received = self
                .clients
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            if received.messages().is_empty() {
                break;
            }
            for message in received.messages() {
                records.push(sqs_message(message.message_id().unwrap_or_default(), message.body().unwrap_or_default()));
                let receipt = message.receipt_handle().expect("receipt");
                self.clients.sqs.delete_message().queue_url(url).receipt_handle(receipt).send().await.expect("delete");
            }
        }
        let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
        event.records = records;
        event
    }
}

/// An SQS record as Lambda delivers it.
pub fn sqs_message(id: &str, body: &str) -> aws_lambda_events::event::sqs::SqsMessage {
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(body.to_owned());
    message
}

/// A client id the tests know to be valid.
pub fn client_id(id: &str) -> docusnap_core::ClientId {
    docusnap_core::ClientId::parse(id).unwrap_or_else(|e| panic!("{id:?}: {e}"))
}

/// A v1 client: makes a fresh AES key per request and encrypts as the Android app does.
pub struct Client {
    pub id: String,
    wrap: ClientWrap,
}

/// One prepared `POST /process` upload, with the key to read its result.
pub struct Prepared {
    pub key: AesKey,
    pub sha256: String,
    pub body: Value,
}

impl Client {
    pub fn new(id: impl Into<String>) -> Self {
        let public = server_key().public_key_pem().to_owned();
        Self { id: id.into(), wrap: ClientWrap::from_public_pem(&public).expect("public key") }
    }

    /// Encrypts `inner` (the decrypted JSON of the protocol) into a request with content.
    pub fn upload(&self, task_type: &str, inner: &Value) -> Prepared {
        self.upload_bytes(task_type, inner.to_string().as_bytes())
    }

    pub fn upload_bytes(&self, task_type: &str, plaintext: &[u8]) -> Prepared {
        let key = AesKey::generate().expect("AES key");
        let content = key.seal_base64(plaintext).expect("sealing");
        let sha256 = sha256_hex(content.as_bytes());
        let aes_key = self.wrap.wrap(key.as_bytes()).expect("wrapping");
        let body = json!({
            "client_id": self.id, "type": task_type, "SHA256": sha256,
            "has_content": true, "aes_key": aes_key, "content": content,
        });
        Prepared { key, sha256, body }
    }

    /// A poll: the same task, without content.
    pub fn poll(&self, task_type: &str, sha256: &str) -> Value {
        json!({"client_id": self.id, "type": task_type, "SHA256": sha256, "has_content": false})
    }

    /// Wraps arbitrary bytes as an `aes_key`, for tests of bad keys.
    pub fn wrap_raw(&self, bytes: &[u8]) -> String {
        self.wrap.wrap(bytes).expect("wrapping")
    }
}

/// A doc request's inner JSON with the given page bytes and library.
pub fn doc_content(pages: &[&[u8]], library: Value) -> Value {
    let pages: Vec<String> = pages.iter().map(|p| BASE64.encode(p)).collect();
    json!({"to_process": pages, "file_lib": library})
}

pub fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Serves cargo-lambda's invoke endpoint for the OCR and extract functions over `t`:
/// `POST /2015-03-31/functions/<ocr|extract>/invocations` runs the real handlers.
pub async fn invoke_endpoint(t: &Arc<TestStack>) -> Server {
    let t = t.clone();
    let handler: Handler = Arc::new(move |request| {
        let t = t.clone();
        Box::pin(async move {
            let Ok(event) = serde_json::from_value::<aws_lambda_events::event::sqs::SqsEvent>(request.body) else {
                return Reply::json(400, json!({"errorType": "InvalidEvent"}));
            };
            let response = if request.path.contains("/functions/ocr/") {
                serde_json::to_value(docusnap_ocr_fn::handle(&t.ocr_function(), event).await)
            } else if request.path.contains("/functions/extract/") {
                serde_json::to_value(
                    docusnap_extract_fn::handle(&t.extract_function::<NoLlm>(None), event, lambda_deadline()).await,
                )
            } else {
                return Reply::json(404, json!({"errorType": "ResourceNotFoundException"}));
            };
            Reply::json(200, response.unwrap_or_default())
        })
    });
    Server::serve("", handler).await
}

/// The local event runner, invoking `server`; failed messages come back at once.
pub fn event_runner(t: &TestStack, server: &Server) -> Runner {
    Runner {
        sqs: t.clients.sqs.clone(),
        invoke: Arc::new(Invoke::Http { http: reqwest::Client::new(), base: server.base.clone() }),
        region: "us-east-1".into(),
        retry_after: Some(0),
        visibility_from_mapping: false,
        deliver_twice: false,
    }
}

/// The template's event source mapping of `queue`.
pub fn mapping(queue: &str) -> Mapping {
    let template = docusnap_infra::Template::from_file(&repo_root().join("template.yaml")).unwrap();
    let all = mappings(&template, &repo_root()).unwrap();
    all.into_iter().find(|m| m.queue == queue).unwrap_or_else(|| panic!("no mapping for {queue}"))
}

/// A test function's local execution environment: `program` (an integration test's
/// `env!("CARGO_BIN_EXE_...")`) as a process, 128 MB, no environment, no log file.
pub fn test_function_spec(
    name: &str, program: &str, timeout: std::time::Duration,
) -> docusnap_infra::runtime::FunctionSpec {
    docusnap_infra::runtime::FunctionSpec {
        name: name.into(),
        launch: docusnap_infra::runtime::Launch::Program(program.into()),
        env: vec![],
        timeout,
        memory_mb: 128,
        log: None,
    }
}

/// A v2 client, as `scripts/v2_client.py` is: one AES-256 key per task, wrapped for the
/// server; pages sealed with AES-256-GCM under `<task id>/page/<index>`.
pub struct V2Client {
    pub key: AesKey,
    wrapped: String,
}

/// A created v2 task as its answer gives it.
pub struct V2Task {
    pub id: String,
    pub token: String,
    pub answer: Value,
}

impl V2Client {
    pub fn new() -> Self {
        let key = AesKey::generate().expect("AES key");
        let wrapped = ClientWrap::from_public_pem(server_key().public_key_pem())
            .expect("public key")
            .wrap(key.as_bytes())
            .expect("wrapping");
        Self { key, wrapped }
    }

    /// The task id this client's key will create (the server derives it the same way).
    pub fn task_id(&self, task_type: docusnap_core::TaskType) -> String {
        docusnap_core::v2::V2TaskId::for_key(task_type, &self.wrapped).expect("base64").to_string()
    }

    pub fn seal_page(&self, task_id: &str, index: usize, page: &[u8]) -> Vec<u8> {
        self.key.seal_gcm(page, format!("{task_id}/page/{index}").as_bytes()).expect("sealing")
    }

    /// The create request for pages already sealed (`sealed`), with more fields merged in.
    pub fn create_body(&self, task_type: &str, sealed: &[Vec<u8>], extra: Value) -> Value {
        let pages: Vec<Value> = sealed.iter().map(|p| json!({"size": p.len(), "sha256": sha256_hex(p)})).collect();
        let mut body = json!({"type": task_type, "key": self.wrapped, "pages": pages});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    pub fn seal_part(&self, task_id: &str, part: &str, value: &Value) -> String {
        BASE64.encode(
            self.key.seal_gcm(value.to_string().as_bytes(), format!("{task_id}/{part}").as_bytes()).expect("sealing"),
        )
    }

    pub fn open_result(&self, task_id: &str, sealed_base64: &str) -> Value {
        let sealed = BASE64.decode(sealed_base64).expect("base64 result");
        let plain = self
            .key
            .open_gcm(sealed, format!("{task_id}/result").as_bytes())
            .expect("the result opens under the task key");
        serde_json::from_slice(&plain).expect("result JSON")
    }
}

impl Default for V2Client {
    fn default() -> Self {
        Self::new()
    }
}

impl TestStack {
    /// `POST /api/v2/tasks`.
    pub async fn create_v2(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/api/v2/tasks", body.to_string()).await
    }

    /// A created task's id and token (panics on a refusal).
    pub async fn created_v2(&self, body: &Value) -> V2Task {
        let (status, answer) = self.create_v2(body).await;
        assert_eq!(status, 201, "{answer}");
        V2Task {
            id: answer["task_id"].as_str().expect("task_id").to_owned(),
            token: answer["token"].as_str().expect("token").to_owned(),
            answer,
        }
    }

    /// `GET` or `DELETE /api/v2/tasks/{id}` with a bearer token.
    pub async fn v2_call(&self, method: &str, id: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = http::Request::builder().method(method).uri(format!("/api/v2/tasks/{id}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = docusnap_upload::handle(&self.app, request.body(Body::Empty).expect("request"))
            .await
            .expect("the handler never fails");
        let status = response.status().as_u16();
        (status, serde_json::from_slice(response.body()).unwrap_or(Value::Null))
    }
}

/// PUTs `body` to upload `index` of a create answer, with the headers it names.
pub async fn put_page(answer: &Value, index: usize, body: Vec<u8>) -> u16 {
    let upload = &answer["uploads"][index];
    let client = reqwest::Client::new();
    let mut request = client.put(upload["url"].as_str().expect("url")).body(body);
    for (name, value) in upload["headers"].as_object().expect("headers") {
        request = request.header(name.as_str(), value.as_str().expect("header value"));
    }
    request.send().await.expect("PUT to the bucket").status().as_u16()
}
