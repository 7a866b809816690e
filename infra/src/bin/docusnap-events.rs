//! `docusnap-events`: the local event-source runner. Feeds every function that template.yaml
//! gives an SQS event from its queue, through cargo-lambda's invoke endpoint, until stopped.
//!
//!     docusnap-events --invoke http://127.0.0.1:9000 [--template template.yaml]
//!                     [--prefix docusnap-dev] [--retry-after SECONDS]

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use docusnap_infra::events::{locate_queues, mappings, Runner};

#[tokio::main]
async fn main() -> Result<()> {
    docusnap_core::telemetry::init();
    let mut template_path = PathBuf::from("template.yaml");
    let mut prefix = String::from("docusnap");
    let mut invoke_base = String::from("http://127.0.0.1:9000");
    let mut retry_after = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--template" => template_path = value()?.into(),
            "--prefix" => prefix = value()?,
            "--invoke" => invoke_base = value()?,
            "--retry-after" => retry_after = Some(value()?.parse().context("--retry-after takes whole seconds")?),
            "-h" | "--help" => {
                println!("usage: docusnap-events [--template FILE] [--prefix NAME] [--invoke URL] [--retry-after SECONDS]");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let template = docusnap_infra::load_template(&template_path)?;
    let root = template_path.parent().map(PathBuf::from).unwrap_or_default();
    let mappings = mappings(&template, &root)?;
    let sdk = docusnap_core::aws::sdk_config().await;
    let sqs = docusnap_core::aws::sqs(&sdk);
    let stack = locate_queues(&template, &sqs, &prefix).await?;
    for m in &mappings {
        tracing::info!(function = %m.binary, queue = %m.queue, batch = m.batch_size, "feeding");
    }
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    let runner = Runner { sqs, http: reqwest::Client::new(), invoke_base, region, retry_after };
    runner.run(stack, mappings).await;
    Ok(())
}
