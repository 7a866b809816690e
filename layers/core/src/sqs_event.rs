//! The SQS side of a queue-fed function: each record of a batch handled on its own, and
//! the ones that failed reported back (`ReportBatchItemFailures`), so that SQS delivers
//! only those again and, after the queue's receive limit, moves them to its dead-letter
//! queue.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::error;

/// One record as the handler reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub body: String,
    /// How often SQS has handed this message out, this time included (1 when the event
    /// does not say).
    pub receive_count: u32,
    /// The ARN of the queue it came from.
    pub queue_arn: String,
    /// What SQS needs to change this delivery's visibility (a retry's backoff).
    pub receipt_handle: Option<String>,
}

impl Record {
    /// Whether it came from `dead_letter_arn`: a message its own queue gave up on.
    pub fn is_dead_letter(&self, dead_letter_arn: Option<&str>) -> bool {
        dead_letter_arn.is_some_and(|arn| arn == self.queue_arn)
    }
}

/// Runs `handle` on each record, one after the other; a record it fails is reported by
/// its message id.
pub async fn each_record<F, Fut, E>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(Record) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.unwrap_or_default();
        let receive_count = record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        let queue_arn = record.event_source_arn.unwrap_or_default();
        let record = Record {
            body: record.body.unwrap_or_default(),
            receive_count,
            queue_arn,
            receipt_handle: record.receipt_handle,
        };
        if let Err(e) = handle(record).await {
            error!(message = %message_id, error = %e, "record failed; SQS will deliver it again");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
