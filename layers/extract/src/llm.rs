//! The LLM clients: chat completions over HTTP, from Zhipu's API or any OpenAI-compatible
//! server (vLLM, llama.cpp's server, Ollama); Amazon Bedrock's Converse API has its own
//! client module. Calls are bounded three ways, the same for every provider
//! ([`bounded`]): a timeout per call, a few retries with exponential backoff and jitter
//! (honouring `Retry-After`) on 429, 5xx and timeouts, and a deadline for all of it, so a
//! task never outlives its Lambda.

use std::future::Future;
use std::time::{Duration, Instant};

use docusnap_core::secret::Secret;
use docusnap_core::task::{AnswerFormat, ExtractorKind, TokenUsage};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::schema::AnswerSchema;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}

/// One answer and what it cost: the provider's usage, zero when it does not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub usage: TokenUsage,
}

/// A model that answers a conversation with text. One HTTP implementation
/// ([`HttpChatModel`]); tests of the extraction flow may script their own.
pub trait ChatModel: Send + Sync {
    /// What the task item records as its extractor, e.g. `llm:glm-4-plus`.
    fn extractor(&self) -> ExtractorKind;

    /// The assistant's answer, within `deadline`, and the tokens it took. `schema` is the
    /// answer's shape, sent as the model's settings' [`AnswerFormat`] says.
    fn complete(
        &self, messages: &[Message], schema: &AnswerSchema, deadline: Instant,
    ) -> impl Future<Output = Result<Completion, LlmError>> + Send;

    /// One small authenticated call, made once at start-up: a wrong key or endpoint shows
    /// in the log within minutes, not in quality reports weeks later.
    fn probe(&self) -> impl Future<Output = Result<(), LlmError>> + Send {
        async move {
            let messages = [Message::user("Answer with the JSON object {} and nothing else.")];
            self.complete(&messages, &crate::schema::empty_object(), Instant::now() + PROBE_BUDGET).await.map(|_| ())
        }
    }
}

/// The start-up probe's time, retries included: enough for a cold provider, short enough
/// not to hold the first tasks' LLM calls back.
pub const PROBE_BUDGET: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The body is not kept: a provider's error may quote the prompt, and with it the
    /// document, and errors end up in logs.
    #[error("the LLM answered HTTP {status} ({body_bytes} bytes of body)")]
    Status { status: u16, body_bytes: usize },
    #[error("the LLM did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the LLM could not be reached: {0}")]
    Transport(String),
    #[error("the LLM's answer is not a chat completion: {0}")]
    Malformed(String),
    /// The answer ran past the most tokens a right one needs ([`AnswerSchema::max_tokens`]):
    /// a model repeating itself, cut off well before the call's timeout.
    #[error("the LLM's answer ran past {0} tokens")]
    Cut(u32),
    #[error("no time left for another LLM call (last failure: {last})")]
    OutOfTime { last: String },
}

impl LlmError {
    /// Worth another try: rate limits, server errors, timeouts and dropped connections;
    /// not a refused key (401, 403), a bad request or an answer that is no completion.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::Timeout(_) | LlmError::Transport(_) => true,
            // Whether a model falls into repeating itself is chance at any temperature
            // above 0: the same request looped twice and then answered in 8 s
            // (gemma-3-270m, scripts/llm-check). A call is cut within the page's tokens,
            // so a retry costs seconds of the task's budget, not a timeout.
            LlmError::Cut(_) => true,
            LlmError::Malformed(_) | LlmError::OutOfTime { .. } => false,
        }
    }
}

/// Which API dialect the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Zhipu's `chat/completions` (GLM): adds `thinking: disabled`.
    Zhipu,
    /// Any server with OpenAI's `chat/completions`.
    OpenAi,
    /// Amazon Bedrock's Converse API, through the AWS SDK and the function's IAM role.
    Bedrock,
}

impl Provider {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "zhipu" | "glm" | "bigmodel" => Some(Provider::Zhipu),
            "openai" | "openai-compatible" | "vllm" | "ollama" | "llamacpp" => Some(Provider::OpenAi),
            "bedrock" | "amazon-bedrock" => Some(Provider::Bedrock),
            _ => None,
        }
    }

    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::Zhipu => Some("https://open.bigmodel.cn/api/paas/v4"),
            // The SDK's regional endpoint.
            Provider::Bedrock => Some(""),
            Provider::OpenAi => None,
        }
    }

    /// The strictest form the provider is known to enforce on every model it serves:
    /// OpenAI's `json_schema` (OpenAI, vLLM, llama-server); Zhipu takes only
    /// `json_object`; Bedrock's forced tool works on Claude 3 and later and on Nova, where
    /// `outputConfig` only on its newer models.
    pub fn default_format(self) -> AnswerFormat {
        match self {
            Provider::OpenAi => AnswerFormat::JsonSchema,
            Provider::Zhipu => AnswerFormat::JsonObject,
            Provider::Bedrock => AnswerFormat::Tool,
        }
    }

    /// Whether the provider's API has this form at all.
    pub fn takes(self, format: AnswerFormat) -> bool {
        use AnswerFormat::*;
        match self {
            Provider::OpenAi => matches!(format, JsonSchema | JsonObjectSchema | JsonObject | Off),
            Provider::Zhipu => matches!(format, JsonObject | Off),
            Provider::Bedrock => matches!(format, JsonSchema | Tool | Off),
        }
    }

    pub fn default_model(self) -> Option<&'static str> {
        match self {
            Provider::Zhipu => Some("glm-4-plus"),
            Provider::OpenAi | Provider::Bedrock => None,
        }
    }
}

/// A single call may take this long: GLM answers a page's extraction in 5-20 s; a minute
/// leaves room for a slow queue on the provider's side without hiding a dead connection.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// All calls for one task (retries and the re-ask included) end within this: the extract
/// function's timeout is five minutes and the rules fallback and the writes need seconds.
pub const DEFAULT_TOTAL_BUDGET: Duration = Duration::from_secs(200);
/// Calls per request at most: one and three retries.
pub const MAX_ATTEMPTS: u32 = 4;
/// ... or, while the calls end cut at the answer's token limit, this many. Such a call
/// ends within seconds and the page's tokens, and each is a fresh chance: gemma-3-270m
/// looped on about half its calls (scripts/llm-check), so four fell short one task in ten.
/// The deadline still holds them all.
pub const MAX_CUT_ATTEMPTS: u32 = 8;
/// The first retry waits about this long (with jitter); each further one twice as long.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// No wait between retries is longer, whatever `Retry-After` says; a longer one would
/// rather end in the rules fallback.
const BACKOFF_CAP: Duration = Duration::from_secs(20);
/// An answer larger than this is not a result of ours.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Low temperature: extraction wants the same answer for the same page.
const TEMPERATURE: f64 = 0.1;

#[derive(Clone, Debug, PartialEq)]
pub struct LlmSettings {
    pub provider: Provider,
    /// Up to the API version, e.g. `https://open.bigmodel.cn/api/paas/v4` or
    /// `http://localhost:8000/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    /// How the answer's shape is asked for; one the provider [`Provider::takes`].
    pub format: AnswerFormat,
    pub call_timeout: Duration,
    pub total_budget: Duration,
    /// Retries wait `BACKOFF_BASE`-based delays; tests shrink them.
    pub backoff_base: Duration,
}

impl LlmSettings {
    /// What a result this model made is recorded as: `llm:<model> (<format>)`.
    pub fn extractor(&self) -> ExtractorKind {
        ExtractorKind::Llm { model: self.model.clone(), format: Some(self.format) }
    }

    pub fn new(
        provider: Provider, base_url: impl Into<String>, model: impl Into<String>, api_key: Option<String>,
    ) -> Self {
        Self {
            provider,
            base_url: base_url.into(),
            model: model.into(),
            api_key: api_key.map(Secret::new),
            format: provider.default_format(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            total_budget: DEFAULT_TOTAL_BUDGET,
            backoff_base: BACKOFF_BASE,
        }
    }
}

/// The HTTP chat model.
#[derive(Clone, Debug)]
pub struct HttpChatModel {
    http: reqwest::Client,
    settings: LlmSettings,
    url: String,
}

impl HttpChatModel {
    pub fn new(settings: LlmSettings) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LlmError::Transport(e.to_string()))?;
        let url = format!("{}/chat/completions", settings.base_url.trim_end_matches('/'));
        Ok(Self { http, settings, url })
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    fn body(&self, messages: &[Message], schema: &AnswerSchema) -> Value {
        let mut body = json!({
            "model": self.settings.model,
            "messages": messages,
            "temperature": TEMPERATURE,
            // `max_tokens`, not OpenAI's newer `max_completion_tokens`: Zhipu, vLLM and
            // llama-server read this one, and OpenAI still takes it for chat models.
            "max_tokens": schema.max_tokens,
            "stream": false,
        });
        let response_format = match self.settings.format {
            AnswerFormat::JsonSchema => Some(json!({
                "type": "json_schema",
                // Not `strict`: OpenAI's strict mode wants every object closed, and a
                // page's kv is open-ended by nature.
                "json_schema": {"name": schema.name, "description": schema.description, "schema": schema.schema},
            })),
            AnswerFormat::JsonObjectSchema => Some(json!({"type": "json_object", "schema": schema.schema})),
            AnswerFormat::JsonObject => Some(json!({"type": "json_object"})),
            // Tool is Bedrock's; settings never pair it with an HTTP provider.
            AnswerFormat::Tool | AnswerFormat::Off => None,
        };
        if let Some(format) = response_format {
            body["response_format"] = format;
        }
        if self.settings.provider == Provider::Zhipu {
            // GLM-4.5 and later think by default: slower, and the answer is all we use.
            body["thinking"] = json!({"type": "disabled"});
        }
        body
    }

    /// One HTTP call: the answer's text, or why not, with the server's `Retry-After`.
    async fn call(
        &self, body: &Value, max_tokens: u32, timeout: Duration,
    ) -> Result<Completion, (LlmError, Option<Duration>)> {
        let mut request = self.http.post(&self.url).timeout(timeout).json(body);
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key.expose());
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                LlmError::Timeout(timeout)
            } else {
                LlmError::Transport(error_chain(&e))
            }
        };
        let response = request.send().await.map_err(|e| (transport(e), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let bytes = response.bytes().await.map_err(|e| (transport(e), None))?;
        if !status.is_success() {
            return Err((LlmError::Status { status: status.as_u16(), body_bytes: bytes.len() }, retry_after));
        }
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err((LlmError::Malformed(format!("{} bytes", bytes.len())), None));
        }
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| (LlmError::Malformed(e.to_string()), None))?;
        // The tokens the provider billed (OpenAI's and Zhipu's `usage`), when it says.
        let usage = &answer["usage"];
        let usage = TokenUsage {
            input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        };
        if answer["choices"][0]["finish_reason"] == "length" {
            return Err((LlmError::Cut(max_tokens), None));
        }
        let text = answer["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| (LlmError::Malformed("no choices[0].message.content".into()), None))?;
        Ok(Completion { text, usage })
    }
}

impl ChatModel for HttpChatModel {
    fn extractor(&self) -> ExtractorKind {
        self.settings.extractor()
    }

    async fn complete(
        &self, messages: &[Message], schema: &AnswerSchema, deadline: Instant,
    ) -> Result<Completion, LlmError> {
        let body = self.body(messages, schema);
        bounded(&self.settings, deadline, |timeout| self.call(&body, schema.max_tokens, timeout)).await
    }
}

/// Runs `call` (one request with the timeout it is given) until it answers, retrying what
/// [`LlmError::is_retryable`] allows with backoff, within `deadline` and the settings'
/// budget. Every attempt is measured (`LlmCallMs`, by outcome).
pub(crate) async fn bounded<F, Fut>(settings: &LlmSettings, deadline: Instant, call: F) -> Result<Completion, LlmError>
where
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = Result<Completion, (LlmError, Option<Duration>)>>,
{
    let deadline = deadline.min(Instant::now() + settings.total_budget);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LlmError::OutOfTime { last: "none yet".into() });
        }
        let started = Instant::now();
        let outcome = call(settings.call_timeout.min(left)).await;
        let status = match &outcome {
            Ok(_) => "ok".to_owned(),
            Err((LlmError::Status { status, .. }, _)) => status.to_string(),
            Err((LlmError::Timeout(_), _)) => "timeout".to_owned(),
            Err((LlmError::Cut(_), _)) => "cut".to_owned(),
            Err(_) => "error".to_owned(),
        };
        docusnap_core::metrics::llm_call(started.elapsed(), &status);
        let (error, retry_after) = match outcome {
            Ok(answer) => {
                info!(attempt, ms = started.elapsed().as_millis() as u64, model = %settings.model, "LLM answered");
                docusnap_core::metrics::llm_tokens(answer.usage.input_tokens, answer.usage.output_tokens);
                return Ok(answer);
            }
            Err(failure) => failure,
        };
        let most = if matches!(error, LlmError::Cut(_)) { MAX_CUT_ATTEMPTS } else { MAX_ATTEMPTS };
        if !error.is_retryable() || attempt >= most {
            return Err(error);
        }
        let wait = retry_after.unwrap_or_else(|| backoff(settings.backoff_base, attempt)).min(BACKOFF_CAP);
        if Instant::now() + wait >= deadline {
            return Err(LlmError::OutOfTime { last: error.to_string() });
        }
        warn!(attempt, error = %error, wait_ms = wait.as_millis() as u64, "LLM call failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// "Full jitter" backoff: uniform in [0, base * 2^(attempt-1)], so that many tasks hit by
/// one rate limit do not come back in step.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << (attempt - 1).min(10));
    ceiling.mul_f64(jitter())
}

/// A number in [0, 1) that differs between calls and processes; backoff needs spread,
/// not cryptographic randomness.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// reqwest's errors say the useful part ("connection refused") only in their sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_its_ceiling() {
        for attempt in 1..=6 {
            let wait = backoff(Duration::from_millis(100), attempt);
            assert!(wait < Duration::from_millis(100 << (attempt - 1)), "{attempt}: {wait:?}");
        }
        let spread: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(Duration::from_secs(1), 3).as_nanos()).collect();
        assert!(spread.len() > 10, "jitter must spread retries");
    }

    #[test]
    fn only_rate_limits_server_errors_timeouts_and_cut_answers_are_retried() {
        let status = |status| LlmError::Status { status, body_bytes: 0 };
        assert!(status(429).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(LlmError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(LlmError::Cut(688).is_retryable());
        assert!(!LlmError::Malformed(String::new()).is_retryable());
    }

    #[test]
    fn zhipu_requests_disable_thinking_and_openai_ones_do_not_mention_it() {
        let zhipu = HttpChatModel::new(LlmSettings::new(Provider::Zhipu, "http://x/v4/", "glm-4-plus", None)).unwrap();
        assert_eq!(zhipu.url, "http://x/v4/chat/completions");
        let schema = crate::schema::doc(false, &crate::schema::Room::new(&[], &Default::default()));
        let body = zhipu.body(&[Message::user("hi")], &schema);
        assert_eq!(body["thinking"], json!({"type": "disabled"}));
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
        let openai = HttpChatModel::new(LlmSettings::new(Provider::OpenAi, "http://x/v1", "qwen", None)).unwrap();
        assert!(openai.body(&[], &schema).get("thinking").is_none());
        assert_eq!(openai.extractor().to_string(), "llm:qwen (json-schema)");
    }

    #[test]
    fn each_format_asks_for_the_answer_as_the_provider_spells_it() {
        let schema = crate::schema::doc(false, &crate::schema::Room::new(&[], &Default::default()));
        let body = |format| {
            let mut settings = LlmSettings::new(Provider::OpenAi, "http://x/v1", "qwen", None);
            settings.format = format;
            HttpChatModel::new(settings).unwrap().body(&[], &schema)
        };
        let strict = body(AnswerFormat::JsonSchema);
        assert_eq!(strict["response_format"]["type"], "json_schema");
        assert_eq!(strict["response_format"]["json_schema"]["name"], "document_result");
        assert_eq!(strict["response_format"]["json_schema"]["schema"], schema.schema);
        let grammar = body(AnswerFormat::JsonObjectSchema);
        assert_eq!(grammar["response_format"], json!({"type": "json_object", "schema": schema.schema}));
        assert_eq!(body(AnswerFormat::JsonObject)["response_format"], json!({"type": "json_object"}));
        assert!(body(AnswerFormat::Off).get("response_format").is_none());
        for provider in [Provider::OpenAi, Provider::Zhipu, Provider::Bedrock] {
            assert!(provider.takes(provider.default_format()), "{provider:?}");
        }
        assert!(!Provider::Zhipu.takes(AnswerFormat::JsonSchema), "GLM has no json_schema");
        assert!(!Provider::OpenAi.takes(AnswerFormat::Tool));
    }
}
