//! S3 event notifications as SQS delivers them: the bucket's `ObjectCreated` events that
//! feed the OCR function (envelopes, v2 pages, batch files) and the callback function.

use serde::Deserialize;

/// The parts of an S3 event notification the functions read. AWS's own records carry
/// more fields, moto's fewer, so only these are required.
#[derive(Deserialize)]
pub struct Notification {
    #[serde(rename = "Records", default)]
    pub records: Vec<NotificationRecord>,
    /// `s3:TestEvent` when S3 checks that it may write to the queue.
    #[serde(rename = "Event")]
    pub event: Option<String>,
}

#[derive(Deserialize)]
pub struct NotificationRecord {
    pub s3: S3Entity,
    /// When the object was written (ISO 8601): a v2 page's arrival is judged by it, not by
    /// when the queue delivered the notification.
    #[serde(rename = "eventTime")]
    pub event_time: Option<String>,
}

#[derive(Deserialize)]
pub struct S3Entity {
    pub object: S3Object,
}

#[derive(Deserialize)]
pub struct S3Object {
    pub key: String,
    pub size: Option<u64>,
}

/// S3 sends object keys URL-encoded, with '+' for spaces.
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_arrive_url_encoded_with_plus_for_space() {
        assert_eq!(decode_key("tasks/my+phone%2F1/doc/ab/envelope.json"), "tasks/my phone/1/doc/ab/envelope.json");
        assert_eq!(decode_key("tasks/a%252Fb/doc/ab/envelope.json"), "tasks/a%2Fb/doc/ab/envelope.json");
    }
}
