//! S3 event notifications as SQS delivers them: the bucket's `ObjectCreated` events that
//! feed the OCR function (envelopes, v2 pages, batch files) and the callback function.

use serde::Deserialize;

/// The parts of an S3 event notification the functions read. AWS's own records carry
/// more fields, moto's fewer, so only these are required.
#[derive(Debug, Deserialize)]
pub struct Notification {
    #[serde(rename = "Records", default)]
    pub records: Vec<NotificationRecord>,
    /// `s3:TestEvent` when S3 checks that it may write to the queue.
    #[serde(rename = "Event")]
    pub event: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NotificationRecord {
    pub s3: S3Entity,
    /// When the object was written (ISO 8601): a v2 page's arrival is judged by it, not by
    /// when the queue delivered the notification.
    #[serde(rename = "eventTime")]
    pub event_time: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct S3Entity {
    pub object: S3Object,
}

#[derive(Debug, Deserialize)]
pub struct S3Object {
    pub key: String,
    pub size: Option<u64>,
}

/// S3 sends object keys URL-encoded, with '+' for spaces.
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// S3's `eventTime` (`2026-11-30T05:21:05.123Z`) as Unix seconds; `None` if it is not one.
pub fn parse_event_time(text: &str) -> Option<crate::clock::Timestamp> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let sec = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse_to_unix_seconds() {
        assert_eq!(parse_event_time("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_event_time("2026-11-30T05:21:05.123Z"), Some(1_796_016_065));
        assert_eq!(parse_event_time("2000-02-29T12:00:00Z"), Some(951_825_600));
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-30 05:21:05"] {
            assert_eq!(parse_event_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_arrive_url_encoded_with_plus_for_space() {
        assert_eq!(decode_key("tasks/my+phone%2F1/doc/ab/envelope.json"), "tasks/my phone/1/doc/ab/envelope.json");
        assert_eq!(decode_key("tasks/a%252Fb/doc/ab/envelope.json"), "tasks/a%2Fb/doc/ab/envelope.json");
    }
}
