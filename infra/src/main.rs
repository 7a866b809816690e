//! `docusnap-provision`: creates template.yaml's tables, buckets and queues on the
//! endpoint in `AWS_ENDPOINT_URL` (moto locally), and writes each named function's
//! resolved environment to `<env-dir>/<Function>.env` (KEY=VALUE lines).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    let mut template = PathBuf::from("template.yaml");
    let mut prefix = String::from("docusnap");
    let mut env_dir: Option<PathBuf> = None;
    let mut functions = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--template" => template = value()?.into(),
            "--prefix" => prefix = value()?,
            "--env-dir" => env_dir = Some(value()?.into()),
            "--function" => functions.push(value()?),
            "-h" | "--help" => {
                println!("usage: docusnap-provision [--template FILE] [--prefix NAME] [--env-dir DIR --function LOGICAL_ID]...");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let template = docusnap_infra::load_template(&template)?;
    let sdk = docusnap_core::aws::sdk_config().await;
    let clients = docusnap_infra::Clients::new(&sdk);
    let stack = docusnap_infra::provision(&template, &clients, &prefix).await?;
    for (id, resource) in &stack.resources {
        println!("{id}\t{}\t{}", resource.name, resource.url.as_deref().unwrap_or(&resource.arn));
    }
    if let Some(dir) = env_dir {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for function in &functions {
            let env = stack.function_env(&template, function)?;
            let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            let path = dir.join(format!("{function}.env"));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
