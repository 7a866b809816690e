//! Local Lambda execution environments: each is a process of the function's binary, or a
//! container of its image ([`Launch`]), talking to its own Lambda Runtime API server on
//! loopback, as a Lambda sandbox does.
//!
//! Why not `cargo lambda watch` for these: cargo-lambda 1.9.2 never replaces an instance
//! whose process died (its scheduler drops an instance only when the file watcher itself
//! fails), so one crashed or killed OCR process wedged every later OCR invocation; and it
//! enforces no timeout. Here, as on Lambda, an invocation whose process exits fails with
//! `Runtime.ExitError`, one that outlives the function's timeout is killed and fails with
//! a time-out, and the next invocation starts a fresh process (a cold start). The HTTP API's
//! function runs here too, behind the local HTTP API (the gateway module).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{info, warn};

const API: &str = "/2018-06-01/runtime";
/// How long a fresh process may take to ask for its first event before its invocation
/// counts as failed (Lambda's own init phase is limited to 10 s; a debug build loading
/// ONNX Runtime and its models takes a few).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// What an environment runs.
#[derive(Clone, Debug)]
pub enum Launch {
    /// The function's binary, as a process of this machine.
    Program(PathBuf),
    /// The function's container image (`scripts/images`), as Lambda runs it: `docker run`
    /// on the host network (its Runtime API and moto are on loopback), a read-only root
    /// with a writable `/tmp`, a user that is not root, the function's memory as its limit.
    /// Containers carry `label` (`docusnap.runner=<label>`), so that whoever started the
    /// runner can remove what a killed runner left.
    Image { image: String, label: String },
}

/// Lambda's `/tmp` (ephemeral storage) by default, in MB.
const TMP_MB: u32 = 512;
/// The user Lambda runs a function as is not root, and not known to the image.
const CONTAINER_USER: &str = "993:990";

/// A function as its environments run it.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    /// The name it gets in `AWS_LAMBDA_FUNCTION_NAME` (its binary's name).
    pub name: String,
    pub launch: Launch,
    /// Its environment, on top of the runner's own (a later pair wins).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// Where its processes' output goes (appended); the runner's own output when `None`.
    pub log: Option<PathBuf>,
}

/// Why an invocation failed, in the words Lambda uses for each case.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("Runtime.ExitError: the process could not start: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("Runtime.ExitError: the process exited mid-invocation ({0})")]
    Exited(String),
    #[error("Task timed out after {0:?}")]
    TimedOut(Duration),
    #[error("the function reported an error: {0:.300}")]
    Function(String),
    #[error("Runtime.InitError: {0:.300}")]
    Init(String),
}

/// One invocation handed to a process through `/invocation/next`.
struct Invocation {
    id: String,
    deadline_ms: u64,
    body: Bytes,
    done: oneshot::Sender<Result<Bytes, InvokeError>>,
}

/// What the Runtime API server of one environment shares with its invoker.
struct Api {
    function_arn: String,
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Bytes, InvokeError>>>>,
    /// Set when the process asked for its first event, i.e. its init phase ended.
    ready: tokio::sync::Notify,
    init_error: Mutex<Option<String>>,
}

/// One sandbox: a process (or a container's `docker run`) and its Runtime API.
struct Environment {
    child: tokio::process::Child,
    /// The container's name, when the environment is a container: killing `docker run`
    /// alone would leave the container running.
    container: Option<String>,
    send: mpsc::Sender<Invocation>,
    api: Arc<Api>,
    server: tokio::task::JoinHandle<()>,
    initialised: bool,
    /// When the process (or `docker run`) was started: its init phase is measured from here.
    started: std::time::Instant,
}

impl Environment {
    /// Ends the sandbox now (a time-out): the process, and its container if any.
    fn kill(&mut self) {
        let _ = self.child.start_kill();
        if let Some(name) = self.container.take() {
            remove_container(&name);
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.server.abort();
        self.kill();
    }
}

/// `docker rm -f NAME`, not waited for (tokio reaps the process).
fn remove_container(name: &str) {
    let removal = tokio::process::Command::new("docker")
        .args(["rm", "-f", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = removal {
        warn!(container = name, error = %e, "could not remove the container");
    }
}

/// Up to `concurrency` environments of one function, reused while they live.
pub struct Environments {
    spec: FunctionSpec,
    slots: Semaphore,
    idle: Mutex<Vec<Environment>>,
    invocations: AtomicU64,
}

impl Environments {
    pub fn new(spec: FunctionSpec, concurrency: usize) -> Self {
        Self {
            spec,
            slots: Semaphore::new(concurrency.max(1)),
            idle: Mutex::new(Vec::new()),
            invocations: AtomicU64::new(0),
        }
    }

    /// Runs one invocation with `event`: the function's answer, or why it failed. Waits
    /// for a free environment when all are busy, as a function at its concurrency limit.
    pub async fn invoke(&self, event: Bytes) -> Result<Bytes, InvokeError> {
        let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
        let reused = self.idle.lock().expect("idle environments").pop();
        let mut environment = match reused {
            Some(environment) => environment,
            None => self.start().await?,
        };
        let result = self.run(&mut environment, event).await;
        // A process that exited, timed out or failed to initialise is not used again.
        if matches!(result, Ok(_) | Err(InvokeError::Function(_))) {
            self.idle.lock().expect("idle environments").push(environment);
        }
        result
    }

    async fn start(&self) -> Result<Environment, InvokeError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(InvokeError::Spawn)?;
        let address = listener.local_addr().map_err(InvokeError::Spawn)?;
        let (send, receive) = mpsc::channel(1);
        let api = Arc::new(Api {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{}", self.spec.name),
            next: tokio::sync::Mutex::new(receive),
            pending: Mutex::new(HashMap::new()),
            ready: tokio::sync::Notify::new(),
            init_error: Mutex::new(None),
        });
        let server = tokio::spawn(serve(listener, api.clone()));
        let output = || -> std::io::Result<Stdio> {
            match &self.spec.log {
                Some(path) => Ok(std::fs::OpenOptions::new().create(true).append(true).open(path)?.into()),
                None => Ok(Stdio::inherit()),
            }
        };
        let mut env = self.spec.env.clone();
        env.extend([
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), address.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), self.spec.name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), self.spec.memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION".to_owned(), "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_TIMEOUT".to_owned(), self.spec.timeout.as_secs().to_string()),
        ]);
        let (mut command, container) = match &self.spec.launch {
            Launch::Program(program) => (tokio::process::Command::new(program), None),
            Launch::Image { image, label } => {
                // Unique while it lives: its Runtime API's port is its own.
                let name = format!("{}-{}-{}", self.spec.name, std::process::id(), address.port());
                (docker_run(image, label, &name, self.spec.memory_mb, &env), Some(name))
            }
        };
        let child = command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(output().map_err(InvokeError::Spawn)?)
            .stderr(output().map_err(InvokeError::Spawn)?)
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                return Err(InvokeError::Spawn(e));
            }
        };
        info!(function = %self.spec.name, pid = child.id(), container = container.as_deref(), "started a fresh environment");
        Ok(Environment { child, container, send, api, server, initialised: false, started: std::time::Instant::now() })
    }

    async fn run(&self, environment: &mut Environment, body: Bytes) -> Result<Bytes, InvokeError> {
        if !environment.initialised {
            tokio::select! {
                () = environment.api.ready.notified() => {
                    environment.initialised = true;
                    // Start to the first request for an event: the cold start before any work.
                    let init_ms = environment.started.elapsed().as_millis() as u64;
                    info!(function = %self.spec.name, init_ms, container = environment.container.is_some(), "environment ready");
                }
                status = environment.child.wait() => return Err(self.exited(environment, status)),
                () = tokio::time::sleep(INIT_TIMEOUT) => return Err(InvokeError::Init(format!("no request for an event within {INIT_TIMEOUT:?}"))),
            }
        }
        let n = self.invocations.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:08}-{}", self.spec.name, std::process::id());
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let (done, answer) = oneshot::channel();
        let invocation = Invocation { id, deadline_ms: now_ms + self.spec.timeout.as_millis() as u64, body, done };
        if environment.send.send(invocation).await.is_err() {
            return Err(InvokeError::Exited("its Runtime API is gone".into()));
        }
        tokio::select! {
            answer = answer => answer.unwrap_or_else(|_| Err(InvokeError::Exited("its Runtime API is gone".into()))),
            status = environment.child.wait() => Err(self.exited(environment, status)),
            () = tokio::time::sleep(self.spec.timeout) => {
                warn!(function = %self.spec.name, timeout = ?self.spec.timeout, "the invocation timed out; its process is killed");
                environment.kill();
                Err(InvokeError::TimedOut(self.spec.timeout))
            }
        }
    }

    fn exited(&self, environment: &Environment, status: std::io::Result<std::process::ExitStatus>) -> InvokeError {
        if let Some(why) = environment.api.init_error.lock().expect("init error").take() {
            return InvokeError::Init(why);
        }
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        warn!(function = %self.spec.name, %status, "the function's process exited mid-invocation");
        InvokeError::Exited(status)
    }
}

/// `docker run` of `image` as Lambda runs a function's container (see [`Launch::Image`]).
/// The variables' values stay out of the command line (`-e NAME` takes each from
/// `docker run`'s own environment, which the caller sets), so no secret shows in `ps`. A
/// variable naming a file of this machine (the dev stack's key) is mounted read-only at
/// the same path.
fn docker_run(
    image: &str, label: &str, name: &str, memory_mb: u32, env: &[(String, String)],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("docker");
    command.args(["run", "--rm", "--name", name, "--label", &format!("docusnap.runner={label}"), "--network", "host"]);
    command.args(["--read-only", "--tmpfs", &format!("/tmp:rw,size={TMP_MB}m,mode=1777"), "--user", CONTAINER_USER]);
    command.args(["--memory", &format!("{memory_mb}m")]);
    for (key, value) in env {
        command.args(["-e", key]);
        let path = std::path::Path::new(value);
        if path.is_absolute() && path.is_file() {
            command.args(["-v", &format!("{value}:{value}:ro")]);
        }
    }
    command.arg(image);
    command
}

/// The Runtime API of one environment, on `listener`, until aborted.
async fn serve(listener: TcpListener, api: Arc<Api>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| answer(api.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn answer(api: Arc<Api>, request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(API) else {
        return Ok(reply(StatusCode::NOT_FOUND, "not the Runtime API"));
    };
    let method = request.method().clone();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(reply(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let text = || String::from_utf8_lossy(&body).into_owned();
    let response = match (method, rest.trim_start_matches('/').split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            api.ready.notify_one();
            let Some(invocation) = api.next.lock().await.recv().await else {
                return Ok(reply(StatusCode::GONE, "the environment is shutting down"));
            };
            api.pending.lock().expect("pending").insert(invocation.id.clone(), invocation.done);
            let mut response = reply(StatusCode::OK, invocation.body);
            let headers = response.headers_mut();
            let header = |value: &str| hyper::header::HeaderValue::from_str(value).expect("ASCII header");
            headers.insert("lambda-runtime-aws-request-id", header(&invocation.id));
            headers.insert("lambda-runtime-deadline-ms", header(&invocation.deadline_ms.to_string()));
            headers.insert("lambda-runtime-invoked-function-arn", header(&api.function_arn));
            headers.insert("content-type", header("application/json"));
            response
        }
        (Method::POST, ["invocation", id, outcome @ ("response" | "error")]) => {
            let Some(done) = api.pending.lock().expect("pending").remove(*id) else {
                return Ok(reply(StatusCode::BAD_REQUEST, "no such invocation"));
            };
            let _ =
                done.send(if *outcome == "response" { Ok(body.clone()) } else { Err(InvokeError::Function(text())) });
            reply(StatusCode::ACCEPTED, "")
        }
        (Method::POST, ["init", "error"]) => {
            *api.init_error.lock().expect("init error") = Some(text());
            reply(StatusCode::ACCEPTED, "")
        }
        _ => reply(StatusCode::NOT_FOUND, "unknown Runtime API route"),
    };
    Ok(response)
}

/// `KEY=VALUE` lines, as `cargo lambda watch --env-file` reads them (blank lines and `#`
/// comments skipped).
pub fn read_env_file(path: &std::path::Path) -> std::io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect())
}
