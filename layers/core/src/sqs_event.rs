//! The SQS side of a queue-fed function: each record of a batch handled on its own, and
//! the ones that failed reported back (`ReportBatchItemFailures`), so that SQS delivers
//! only those again and, after the queue's receive limit, moves them to its dead-letter
//! queue.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::error;

/// Runs `handle` on each record's body, one record after the other; a record it fails is
/// reported by its message id.
pub async fn each_record<F, Fut, E>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.unwrap_or_default();
        if let Err(e) = handle(record.body.unwrap_or_default()).await {
            error!(message = %message_id, error = %e, "record failed; SQS will deliver it again");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
