//! No secret prints: every settings type, the v2 record and answer that hold a task's
//! token and callback secret, and the keys, formatted with `{:?}` and `{:#?}`, show none of
//! the secrets they were given (`docusnap_core::secret::Secret` and hand-written `Debug`s).

use docusnap_core::config::{CallbackSettings, Config, ExtractSettings, OcrSettings, UploadSettings};
use docusnap_core::crypto::{generate_private_key_pem, AesKey, ServerKey};
use docusnap_core::secret::Secret;
use docusnap_core::v2::{Callback, V2Record};

const LLM_KEY: &str = "sk-live-SECRET-1";
const CALLBACK_SECRET: &str = "whsec-SECRET-2";
const TASK_TOKEN: &str = "tok-SECRET-3";

fn printed(value: &impl std::fmt::Debug) -> String {
    format!("{value:?} {value:#?}")
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} printed in {text}");
    }
}

#[test]
fn no_settings_type_record_answer_or_key_prints_a_secret() {
    let vars = [
        ("DOCUSNAP_TASKS_TABLE", "t"),
        ("DOCUSNAP_UPLOADS_BUCKET", "b"),
        ("DOCUSNAP_RSA_KEY_PATH", "/k.pem"),
        ("DOCUSNAP_KEYS_TABLE", "k"),
        ("DOCUSNAP_QUOTAS_TABLE", "q"),
        ("DOCUSNAP_OCR_QUEUE_URL", "o"),
        ("DOCUSNAP_EXTRACT_QUEUE_URL", "e"),
        ("DOCUSNAP_LLM_PROVIDER", "openai"),
        ("DOCUSNAP_LLM_BASE_URL", "http://127.0.0.1:8000/v1"),
        ("DOCUSNAP_LLM_MODEL", "m"),
        ("DOCUSNAP_LLM_API_KEY", LLM_KEY),
    ];
    let lookup = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    let mut text = String::new();
    text += &printed(&Config::from_lookup(lookup).unwrap());
    text += &printed(&UploadSettings::from_lookup(lookup).unwrap());
    text += &printed(&OcrSettings::from_lookup(lookup).unwrap());
    text += &printed(&ExtractSettings::from_lookup(lookup).unwrap());
    text += &printed(&CallbackSettings::from_lookup(lookup).unwrap());
    let llm = docusnap_extract::settings::from_lookup(lookup).unwrap().unwrap();
    text += &printed(&llm);
    let mut settings = llm.settings.clone();
    settings.api_key = Some(Secret::new(LLM_KEY));
    text += &printed(&settings);
    let record = V2Record {
        token_digest: "digest".into(),
        pages: 1,
        arrived: 0,
        read: 0,
        upload_deadline: 0,
        callback: Some(Callback { url: "https://example.com/hook".into(), secret: Secret::new(CALLBACK_SECRET) }),
        usage: Default::default(),
    };
    text += &printed(&record);
    let created = docusnap_upload::v2::CreatedTask {
        task_id: "doc_0".into(),
        token: TASK_TOKEN.into(),
        status: "processing",
        stage: "uploading",
        upload_deadline: 0,
        uploads: vec![],
        callback_secret: Some(CALLBACK_SECRET.into()),
    };
    text += &printed(&docusnap_upload::V2Answer::Created(created));
    let pem = generate_private_key_pem().unwrap();
    text += &printed(&ServerKey::from_pem(&pem).unwrap());
    let key = AesKey::generate().unwrap();
    text += &printed(&key);
    // The private key's base64 body, line by line, and the AES key's bytes in any common form.
    let pem_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 16).collect();
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let bytes = format!("{:?}", key.as_bytes());
    let mut secrets = vec![LLM_KEY, CALLBACK_SECRET, TASK_TOKEN, hex.as_str(), bytes.as_str()];
    secrets.extend(pem_lines);
    assert_no_secret(&text, &secrets);
    assert!(text.contains("[redacted]"), "the secrets' places are marked");
}
