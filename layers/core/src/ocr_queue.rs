//! The OCR queue's messages, as one type.

/// Everything the OCR queue carries, parsed once: a v2 task's deadline or start (sent by
/// the upload function), a page group of a fanned-out task (the OCR function's own), or
/// the bucket's notification of a new object (an envelope, a v2 page, a batch file).
/// The shapes share no required field, so the first that fits is the message.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum OcrQueueMessage {
    V2(crate::v2::V2Message),
    Group(crate::task::GroupMessage),
    Notification(crate::s3_event::Notification),
}

impl OcrQueueMessage {
    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2::V2Event;

    #[test]
    fn each_shape_parses_as_its_own_message() {
        let v2 = OcrQueueMessage::parse(r#"{"v2_task": "doc_00", "event": "upload_deadline"}"#).unwrap();
        assert!(matches!(v2, OcrQueueMessage::V2(m) if m.event == V2Event::UploadDeadline));
        let group = r#"{"client_id": "c", "type": "doc", "SHA256": "ab", "group": 1, "groups": 3}"#;
        assert!(
            matches!(OcrQueueMessage::parse(group).unwrap(), OcrQueueMessage::Group(g) if g.group == 1 && g.layout.is_empty())
        );
        let s3 = r#"{"Records": [{"eventTime": "2026-11-30T05:21:05.123Z", "s3": {"object": {"key": "tasks/a.json", "size": 3}}}]}"#;
        assert!(
            matches!(OcrQueueMessage::parse(s3).unwrap(), OcrQueueMessage::Notification(n) if n.records.len() == 1)
        );
        let test_event = OcrQueueMessage::parse(r#"{"Event": "s3:TestEvent"}"#).unwrap();
        assert!(matches!(test_event, OcrQueueMessage::Notification(n) if n.event.as_deref() == Some("s3:TestEvent")));
        assert!(OcrQueueMessage::parse("not json").is_err());
        assert!(OcrQueueMessage::parse("[1, 2]").is_err());
    }
}
