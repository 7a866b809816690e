//! The local stack as the template wires it: an envelope's creation notifies the OCR
//! queue, and the RSA key loads from Secrets Manager as in production.

use docusnap_core::config::KeySource;
use docusnap_core::keys::load_server_key;
use docusnap_core::task::TaskId;
use docusnap_core::TaskType;
use docusnap_tests::{doc_content, server_key_pem, unique_prefix, Client, TestStack};
use serde_json::{json, Value};

#[tokio::test]
async fn a_new_envelope_notifies_the_ocr_queue_with_its_key() {
    let t = TestStack::new().await;
    let client = Client::new("notify me");
    let upload = client.upload("doc", &doc_content(&[b"page"], json!({})));
    t.process(&upload.body).await;
    let queue = t.stack.queue_url("OcrQueue").unwrap();
    let mut keys = Vec::new();
    for _ in 0..5 {
        let received = t
            .clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            for record in body["Records"].as_array().into_iter().flatten() {
                keys.push(record["s3"]["object"]["key"].as_str().unwrap().to_owned());
            }
        }
        if !keys.is_empty() {
            break;
        }
    }
    // Keys arrive URL-encoded, spaces as '+', as on AWS.
    let expected = TaskId::new(docusnap_tests::client_id("notify me"), TaskType::Doc, upload.sha256.clone());
    assert_eq!(keys.len(), 1, "{keys:?}");
    let decoded = keys[0].replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&decoded).decode_utf8().unwrap();
    assert_eq!(decoded, expected.envelope_key());
    assert!(TaskId::is_envelope_key(&decoded));
}

#[tokio::test]
async fn the_rsa_key_loads_from_secrets_manager() {
    let sdk = docusnap_tests::sdk_config();
    let secrets = docusnap_core::aws::secrets_manager(&sdk);
    let name = format!("{}-rsa", unique_prefix());
    secrets.create_secret().name(&name).secret_string(server_key_pem()).send().await.unwrap();
    let key = load_server_key(&KeySource::Secret(name), &sdk).await.unwrap();
    assert_eq!(key.public_key_pem(), docusnap_tests::server_key().public_key_pem());
    let missing = load_server_key(&KeySource::Secret("no-such-secret".into()), &sdk).await.unwrap_err();
    assert!(missing.to_string().contains("no-such-secret"), "{missing}");
}
