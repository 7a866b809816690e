//! `docusnap-events`: the local event-source runner and HTTP API. Feeds every function that
//! template.yaml gives an SQS event from its queue until stopped, and with `--http PORT`
//! serves the function of its HTTP API on that loopback port (`docusnap_infra::gateway`):
//! either in local execution environments of its own (`--run DIR`: the functions' binaries
//! in DIR; `--images TAG`: their images, `docusnap-<binary>:TAG` from `scripts/images`; with
//! Lambda's behaviour on a crash or a time-out), or through an invoke endpoint such as
//! `cargo lambda watch`'s (`--invoke URL`, queues only).
//!
//!     docusnap-events (--run target/debug | --images TAG) --env-file FILE [--function-log FILE]
//!                     [--http PORT] [--label NAME] | --invoke URL
//!                     [--template template.yaml] [--prefix docusnap-dev] [--retry-after SECONDS]
//!                     [--concurrency N] [--deliver-twice] [--time-scale K]
//!
//! `--jwt-issuer URL --jwt-audience AUD [--jwt-v1]` guards the routes template.yaml guards
//! with a JWT (its `JwtIssuer`, `JwtAudience` and `JwtForV1`), as API Gateway would.
//!
//! `--label NAME` marks the containers of `--images` (`docusnap.runner=NAME`), so that the
//! script that started the runner removes what a killed runner left.
//!
//! `--time-scale K` runs every function's timeout and every queue's visibility timeout K
//! times shorter (each function is told its shortened timeout): fault runs then see
//! redeliveries and lapsed claims in seconds, in the order AWS would (scripts/chaos).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use docusnap_infra::events::{http_function, locate_queues, mappings, Invoke, Runner};
use docusnap_infra::runtime::{read_env_file, Environments, FunctionSpec, Launch};

const USAGE: &str =
    "usage: docusnap-events ((--run DIR | --images TAG) --env-file FILE [--function-log FILE] [--http PORT] \
[--label NAME] | --invoke URL) [--template FILE] [--prefix NAME] [--retry-after SECONDS] [--concurrency N|BINARY=N] \
[--deliver-twice] [--time-scale K] [--jwt-issuer URL --jwt-audience AUD [--jwt-v1]]";

#[tokio::main]
async fn main() -> Result<()> {
    docusnap_core::telemetry::init();
    let mut template_path = PathBuf::from("template.yaml");
    let mut prefix = String::from("docusnap");
    let (mut invoke_base, mut run_dir, mut env_file, mut function_log) = (None, None::<PathBuf>, None::<PathBuf>, None);
    let (mut images, mut label, mut http_port) =
        (None::<String>, format!("events-{}", std::process::id()), None::<u16>);
    let (mut retry_after, mut deliver_twice, mut time_scale) = (None, false, 1u32);
    let mut concurrency: HashMap<String, usize> = HashMap::new();
    let (mut jwt_issuer, mut jwt_audience, mut jwt_v1) = (None::<String>, None::<String>, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--template" => template_path = value()?.into(),
            "--prefix" => prefix = value()?,
            "--invoke" => invoke_base = Some(value()?),
            "--run" => run_dir = Some(value()?.into()),
            "--images" => images = Some(value()?),
            "--label" => label = value()?,
            "--http" => http_port = Some(value()?.parse().context("--http takes a port")?),
            "--env-file" => env_file = Some(value()?.into()),
            "--function-log" => function_log = Some(value()?.into()),
            "--retry-after" => retry_after = Some(value()?.parse().context("--retry-after takes whole seconds")?),
            // At most `N` at once for every function, `BINARY=N` for one (a later one wins).
            "--concurrency" => {
                let value = value()?;
                let (name, n) = value.split_once('=').unwrap_or(("", &value));
                concurrency.insert(name.to_owned(), n.parse().context("--concurrency takes N or BINARY=N")?);
            }
            "--deliver-twice" => deliver_twice = true,
            "--jwt-issuer" => jwt_issuer = Some(value()?),
            "--jwt-audience" => jwt_audience = Some(value()?),
            "--jwt-v1" => jwt_v1 = true,
            "--time-scale" => time_scale = value()?.parse().context("--time-scale takes a whole number")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let template = docusnap_infra::load_template(&template_path)?;
    let root = template_path.parent().map(PathBuf::from).unwrap_or_default();
    let mut mappings: Vec<_> = mappings(&template, &root)?.into_iter().map(|m| m.scaled(time_scale)).collect();
    // As Lambda does, up to each mapping's MaximumConcurrency at once; --concurrency
    // lowers that (a small machine, a test that wants one at a time).
    for m in &mut mappings {
        let cap = concurrency.get(&m.binary).or(concurrency.get("")).copied().unwrap_or(usize::MAX).max(1);
        m.concurrency = m.max_concurrency.min(cap);
    }
    // How a function's environment starts: its binary in DIR, or its image.
    let launch = |binary: &str| match (&run_dir, &images) {
        (Some(dir), None) => Some(Launch::Program(dir.join(binary))),
        (None, Some(tag)) => Some(Launch::Image { image: format!("docusnap-{binary}:{tag}"), label: label.clone() }),
        _ => None,
    };
    let env = match &env_file {
        Some(path) => read_env_file(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    // Kept for the runner's life (a dropped handle would not stop the server either).
    let mut _http = None;
    if let Some(port) = http_port {
        let (binary, timeout, memory_mb) =
            http_function(&template, &root)?.context("--http: no function in the template has HttpApi events")?;
        let launch = launch(&binary).with_context(|| format!("--http needs --run or --images\n{USAGE}"))?;
        let spec = FunctionSpec {
            name: binary.clone(),
            launch,
            env: env.clone(),
            timeout,
            memory_mb,
            log: function_log.clone(),
        };
        let cap = concurrency.get(&binary).or(concurrency.get("")).copied().unwrap_or(1).max(1);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("listening on port {port}"))?;
        let authorizer = match (jwt_issuer, jwt_audience) {
            (Some(issuer), Some(audience)) => {
                let guards = docusnap_infra::jwt::guards(&template);
                tracing::info!(%issuer, %audience, v1 = jwt_v1, routes = guards.len(), "JWT authorizer on");
                let settings = docusnap_infra::jwt::JwtSettings { issuer, audience, v1: jwt_v1 };
                Some(Arc::new(docusnap_infra::jwt::JwtAuthorizer::new(settings, guards)))
            }
            (None, None) => None,
            _ => bail!("--jwt-issuer and --jwt-audience go together\n{USAGE}"),
        };
        tracing::info!(function = %binary, port, concurrency = cap, "serving the HTTP API");
        let function = Arc::new(Environments::new(spec, cap));
        _http = Some(tokio::spawn(docusnap_infra::gateway::serve(listener, function, authorizer)));
    }
    let local = run_dir.is_some() != images.is_some();
    let invoke = match (invoke_base, local) {
        (Some(base), false) => Invoke::Http { http: reqwest::Client::new(), base },
        (None, true) => {
            // One pool per function, shared by its mappings (its queue and its dead-letter
            // queue), as Lambda's concurrency is the function's.
            let mut functions = HashMap::new();
            for m in &mappings {
                if functions.contains_key(&m.binary) {
                    continue;
                }
                let mut env = env.clone();
                if time_scale > 1 {
                    // What template.yaml tells the extract function of its own timeout.
                    env.push(("DOCUSNAP_FUNCTION_TIMEOUT_SECS".into(), m.timeout.as_secs().to_string()));
                }
                let spec = FunctionSpec {
                    name: m.binary.clone(),
                    launch: launch(&m.binary).expect("exactly one of --run and --images"),
                    env,
                    timeout: m.timeout,
                    memory_mb: m.memory_mb,
                    log: function_log.clone(),
                };
                functions.insert(m.binary.clone(), Arc::new(Environments::new(spec, m.concurrency)));
            }
            Invoke::Local(functions)
        }
        _ => bail!("give one of --invoke, --run and --images\n{USAGE}"),
    };
    let sdk = docusnap_core::aws::sdk_config().await;
    let sqs = docusnap_core::aws::sqs(&sdk);
    let stack = locate_queues(&template, &sqs, &prefix).await?;
    for m in &mappings {
        tracing::info!(function = %m.binary, queue = %m.queue, batch = m.batch_size, concurrency = m.concurrency, timeout_s = m.timeout.as_secs(), deliver_twice, "feeding");
    }
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    let visibility_from_mapping = time_scale > 1;
    let runner = Runner { sqs, invoke: Arc::new(invoke), region, retry_after, visibility_from_mapping, deliver_twice };
    runner.run(stack, mappings).await;
    Ok(())
}
