//! Concurrent identical uploads create exactly one task and one stored object.
//!
//! Identical uploads share an object key and an item key, so a second write would
//! overwrite rather than add. The test therefore counts S3 object *versions* (any second
//! put adds one) and gives each request its own RSA wrapping of the same AES key (OAEP is
//! randomised), so the envelope must hold exactly one request's wrapping, and the item none.

use std::sync::Arc;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use docusnap_tests::{doc_content, Client, TestStack};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_identical_uploads_make_one_task_and_one_object() {
    let t = Arc::new(TestStack::new().await);
    t.clients
        .s3
        .put_bucket_versioning()
        .bucket(t.bucket())
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    let client = Client::new("crowd");
    let upload = client.upload("doc", &doc_content(&[b"the same page"], json!({})));
    let bodies: Vec<Value> = (0..50)
        .map(|_| {
            let mut body = upload.body.clone();
            body["aes_key"] = json!(client.wrap_raw(upload.key.as_bytes()));
            body
        })
        .collect();
    let sent: Vec<String> = bodies.iter().map(|b| b["aes_key"].as_str().unwrap().to_owned()).collect();
    let requests: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let t = t.clone();
            tokio::spawn(async move { t.process(&body).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), (202, json!({"status": "processing"})));
    }

    let items = t.items().await;
    assert_eq!(items.len(), 1);
    let versions = t.clients.s3.list_object_versions().bucket(t.bucket()).send().await.unwrap();
    assert_eq!(versions.versions().len(), 1, "the envelope was written more than once");
    let key = versions.versions()[0].key().unwrap();
    let object = t.clients.s3.get_object().bucket(t.bucket()).key(key).send().await.unwrap();
    let envelope: Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    assert!(sent.iter().any(|k| k == envelope["aes_key"].as_str().unwrap()), "the envelope holds one request's key");
    assert!(!items[0].contains_key("wrapped_key"), "the client's key is kept in the envelope only, not in the table");
}
