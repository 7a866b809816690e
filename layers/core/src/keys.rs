//! Loading the server's RSA private key from a file or from Secrets Manager, and other
//! secrets' strings.

use aws_config::SdkConfig;

use crate::config::KeySource;
use crate::crypto::{KeyError, ServerKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("cannot read the RSA key file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("cannot read the RSA key secret {secret_id}: {detail}")]
    Secret { secret_id: String, detail: String },
    #[error("the RSA key from {origin} is unusable: {source}")]
    Key { origin: String, source: KeyError },
}

pub async fn load_server_key(source: &KeySource, sdk: &SdkConfig) -> Result<ServerKey, KeyLoadError> {
    let (origin, pem) = match source {
        KeySource::File(path) => {
            let origin = path.display().to_string();
            let pem =
                std::fs::read_to_string(path).map_err(|source| KeyLoadError::File { path: origin.clone(), source })?;
            (origin, pem)
        }
        KeySource::Secret(secret_id) => {
            let pem = secret_string(secret_id, sdk)
                .await
                .map_err(|detail| KeyLoadError::Secret { secret_id: secret_id.clone(), detail })?;
            (format!("secret {secret_id}"), pem)
        }
    };
    ServerKey::from_pem(&pem).map_err(|source| KeyLoadError::Key { origin, source })
}

/// A Secrets Manager secret's string value; the error says why not.
pub async fn secret_string(secret_id: &str, sdk: &SdkConfig) -> Result<String, String> {
    let output = crate::aws::secrets_manager(sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string())?;
    output.secret_string().map(str::to_owned).ok_or_else(|| "the secret has no string value".into())
}
